"""`cnn3d features`: pooled clip features of raw videos, for a whole dataset."""

from __future__ import annotations

from pathlib import Path

from ..values import positive_int
from . import checks, videojob
from .common import add_crop_options, add_parser, crop_settings, inference_config


def add(sub) -> None:
    p = add_parser(
        sub, "features", "pooled clip features of raw video files, folders or list files"
    )
    videojob.add_video_job_options(p, "features")
    p.add_argument(
        "--output",
        "-o",
        required=True,
        help="a folder (.npy, .mean.npy and .segments.json per video, manifest.csv) or a "
        ".h5/.hdf5 file (built from <name>.parts/ at the end); a re-run skips videos done",
    )
    p.add_argument(
        "--format",
        choices=("npy", "h5"),
        default=None,
        help="npy = one <name>.npy per video in the -o folder (clips x D, or clips x crops x D), "
        "beside its .mean.npy and .segments.json; h5 = one file (-o must end in .h5 or .hdf5) "
        "(default: h5 for an -o ending in .h5/.hdf5, npy otherwise)",
    )
    add_crop_options(p)
    p.add_argument(
        "--layer",
        help="take the pooled features of this stage instead of the last one: layer1-layer4 "
        "(ResNets, R(2+1)D, MC3, X3D, pytorchvideo's), features.denseblock1-4 / "
        "features.transition1-3 (DenseNet), Mixed_3b-Mixed_5c (I3D), mixed_3b-mixed_5c (S3D), conv3b-conv5b, fc6, "
        "fc7 (C3D), slow.layerN / fast.layerN (SlowFast); a wrong name lists the model's "
        "(default: the last stage)",
    )
    p.add_argument(
        "--spatial",
        action="store_true",
        help="keep the stage's map unpooled: clips x C x T' x H' x W' per video",
    )
    p.add_argument(
        "--clip-length", type=positive_int, help="frames per clip (default: the checkpoint's)"
    )
    p.add_argument(
        "--sample-size", type=positive_int, help="input size in pixels (default: the checkpoint's)"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from ..inference.features import extract_features, output_format

    videojob.check(args, "feature")
    fmt = output_format(Path(args.output), args.format)
    if fmt == "h5":
        checks.output_file(args.output, "-o (the features file)")
    else:
        checks.output_folder(args.output, "-o (the features folder)")
    shard = videojob.shard_of(args)
    config = inference_config(
        args, fps=args.fps, layer=args.layer, spatial=args.spatial, **crop_settings(args)
    )
    inputs = videojob.collect(args)
    if not inputs.paths:
        return videojob.nothing_to_do(inputs)
    model = videojob.load(
        args,
        config.runtime.torch_device(),
        need_names=False,
        clip_length=args.clip_length,
        sample_size=args.sample_size,
    )
    config.transform(model.spec.sample_size)  # crops, order and resize checked before any work
    summary = extract_features(
        model, inputs.paths, inputs.names, Path(args.output), shard, args.progress, config, fmt
    )
    print(f"features in {args.output}: {summary.line()}")
    return videojob.failures(summary.failed, inputs.problems)
