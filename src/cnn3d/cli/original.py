"""The original programs' options that cnn3d's own flags do not already spell (3D-ResNets-
PyTorch's 2018 and 2020 `main.py`, and the sister tool's): each is accepted with the original's
meaning, or refused with one line naming cnn3d's way to do it. Everything they cover is listed
in `tests/test_original_flags.py`."""

from __future__ import annotations

import argparse
import sys

from ..values import depth, positive_float, positive_int


class Refused(argparse.Action):
    """An original option cnn3d does another way: one line saying which, exit 2."""

    def __init__(self, option_strings, dest, advice: str, nargs=0, **kwargs):
        self.advice = advice
        super().__init__(option_strings, argparse.SUPPRESS, nargs=nargs, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"{parser.prog}: error: {option_string} (the original's) {self.advice}", file=sys.stderr
        )
        sys.exit(2)


class Noted(argparse.Action):
    """An original option with nothing to do in cnn3d: a one-line note, then on."""

    def __init__(self, option_strings, dest, note: str, nargs=0, **kwargs):
        self.note = note
        kwargs.setdefault("metavar", "VALUE")
        super().__init__(option_strings, argparse.SUPPRESS, nargs=nargs, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: note: {option_string} {self.note}", file=sys.stderr)


class OnlyDefault(argparse.Action):
    """An original option whose default cnn3d always uses: accepted at that value, refused at
    any other with the reason."""

    def __init__(self, option_strings, dest, default_value, reason: str, **kwargs):
        self.default_value, self.reason = default_value, reason
        kwargs.setdefault("metavar", "VALUE")
        super().__init__(option_strings, argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if values != self.default_value:
            print(
                f"{parser.prog}: error: {option_string} {values}: {self.reason} "
                f"({option_string} {self.default_value})",
                file=sys.stderr,
            )
            sys.exit(2)


class BeginIndex(argparse.Action):
    """The 2018 code's --ft_begin_index k: 0 trains everything, k trains layer k on (5: fc)."""

    def __call__(self, parser, namespace, values, option_string=None):
        modules = {0: "", 1: "layer1", 2: "layer2", 3: "layer3", 4: "layer4", 5: "fc"}
        if values not in modules:
            print(f"{parser.prog}: error: {option_string} takes 0-5, not {values}", file=sys.stderr)
            sys.exit(2)
        namespace.ft_begin_module = modules[values]


class MinScale(argparse.Action):
    """--train_crop_min_scale s: the random resized crop's area range (s, 1)."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.crop_scale = (values, 1.0)


class MinRatio(argparse.Action):
    """--train_crop_min_ratio r: the random resized crop's aspect ratios (r, 1 / r)."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.crop_ratio = (values, 1.0 / values)


TEST_INSTEAD = "is for evaluation: train, then run `cnn3d test --checkpoint <result>/best.pth`"
TORCHRUN = "is how the original started DDP; use `torchrun --nproc_per_node N -m cnn3d train ...`"


def add_train(p) -> None:
    """The 2018 and 2020 `main.py` options beyond cnn3d train's own spellings."""
    g = p.add_argument_group("the original's options (3D-ResNets-PyTorch, 2018 and 2020)")
    g.add_argument(
        "--root_path",
        help="joined onto the relative --video_path, --annotation_path, --result_path, "
        "--resume_path and --pretrain_path, as the original did (default: none)",
    )
    g.add_argument(
        "--n_pretrain_classes",
        type=positive_int,
        help="checked against the pretrained model's class count (default: not checked)",
    )
    g.add_argument(
        "--n_finetune_classes",
        type=positive_int,
        help="the 2018 code's class count when fine-tuning: checked against the annotation file; "
        "--n_classes then means the pretrained model's (default: not checked)",
    )
    g.add_argument(
        "--train_crop_min_scale",
        type=positive_float,
        action=MinScale,
        help="the random crop's smallest area fraction: --crop-scale S 1 (default: 0.25)",
    )
    g.add_argument(
        "--train_crop_min_ratio",
        type=positive_float,
        action=MinRatio,
        help="the random crop's aspect ratios (r, 1/r) (default: 0.75)",
    )
    g.add_argument("--no_hflip", dest="flip", action="store_false", help="--no-flip")
    g.add_argument(
        "--train_t_crop",
        dest="temporal_crop",
        choices=["random", "center"],
        default="random",
        help="where a training clip starts: random, or the video's centre",
    )
    g.add_argument(
        "--ft_begin_index",
        type=int,
        action=BeginIndex,
        help="the 2018 code's: train layer k on, 5 the fc only (default: 0, all)",
    )
    g.add_argument("--no_val", dest="val", action="store_false", help="--no-val")
    g.add_argument("--batchnorm_sync", dest="sync_bn", action="store_true", help="--sync-bn")
    g.add_argument(
        "--no_cuda", dest="device", action="store_const", const="cpu", help="--device cpu"
    )
    g.add_argument("--optimizer", choices=["sgd"], default="sgd", help="only SGD, as the original")
    g.add_argument(
        "--overwrite_milestones",
        action="store_true",
        help="on resume, --milestones replace those the checkpoint's schedule holds",
    )
    g.add_argument(
        "--value_scale",
        type=positive_float,
        help="2020 code: input in [0, value_scale], mean and std scaled alike (default: 1)",
    )
    g.add_argument("--no_mean_norm", action="store_true", help="the mean subtracted is 0")
    g.add_argument("--no_std_norm", action="store_true", help="2020 code: the std divided by is 1")
    g.add_argument(
        "--norm_value",
        type=positive_float,
        help="2018 code: pixels divided by this (1: 0-255, 255: 0-1), its means alike (default: 1)",
    )
    g.add_argument("--std_norm", action="store_true", help="2018 code: divide by its std too")
    g.add_argument(
        "--file_type",
        choices=["jpg", "hdf5"],
        action=Noted,
        nargs=1,
        note="is not needed: cnn3d finds frame folders, HDF5 and video files by themselves",
        help="not needed: the storage is found (default: found)",
    )
    g.add_argument(
        "--accimage",
        action=Noted,
        note="has no effect: cnn3d decodes with libjpeg-turbo",
        help="no effect (cnn3d decodes with libjpeg-turbo)",
    )
    g.add_argument(
        "--colorjitter",
        action=Noted,
        note="did nothing in the original (all its parameters are 0); ignored",
        help="did nothing in the original either",
    )
    for flag, value, reason in (
        ("--initial_scale", 1.0, "cnn3d's corner crop takes the paper's scales"),
        ("--n_scales", 5, "cnn3d's corner crop takes the paper's five scales"),
        ("--scale_step", 0.84089641525, "cnn3d's corner crop takes the paper's scale step"),
    ):
        g.add_argument(
            flag,
            type=float,
            action=OnlyDefault,
            default_value=value,
            reason=reason,
            help=f"accepted at the paper's value only (default: {value})",
        )
    refused = {
        "--no_train": (0, "trains nothing: to evaluate a checkpoint use `cnn3d test`"),
        "--inference": (0, TEST_INSTEAD),
        "--test": (0, TEST_INSTEAD),
        "--inference_subset": (1, TEST_INSTEAD + " --subset"),
        "--test_subset": (1, TEST_INSTEAD + " --subset"),
        "--inference_stride": (1, TEST_INSTEAD + " --window-stride"),
        "--inference_crop": (1, TEST_INSTEAD),
        "--inference_no_average": (0, "keeps clip scores: `cnn3d classify` writes every clip's"),
        "--inference_batch_size": (1, TEST_INSTEAD + " --batch-size"),
        "--output_topk": (1, TEST_INSTEAD + " --topk"),
        "--scale_in_test": (1, TEST_INSTEAD),
        "--crop_position_in_test": (1, TEST_INSTEAD),
        "--no_softmax_in_test": (0, "is not offered: `cnn3d test` averages softmax scores"),
        "--distributed": (0, TORCHRUN),
        "--dist_url": (1, TORCHRUN),
        "--world_size": (1, TORCHRUN),
        "--begin_epoch": (1, "is read from the checkpoint: use --resume (or --resume auto)"),
    }
    for flag, (nargs, advice) in refused.items():
        g.add_argument(flag, action=Refused, advice=advice, nargs=nargs, help=argparse.SUPPRESS)


def add_test(p) -> None:
    """The 2020 code's inference options and the 2018 code's test options, for `cnn3d test`."""
    g = p.add_argument_group("the original's options (3D-ResNets-PyTorch)")
    g.add_argument(
        "--inference_crop",
        choices=["center"],
        action=OnlyDefault,
        default_value="center",
        reason="cnn3d tests on centre crops (or --three-crop)",
        help="accepted as center only (default: center)",
    )
    g.add_argument(
        "--crop_position_in_test",
        action=OnlyDefault,
        default_value="c",
        reason="cnn3d tests on centre crops (or --three-crop)",
        help="accepted as c only (default: c)",
    )
    g.add_argument(
        "--scale_in_test",
        type=float,
        action=OnlyDefault,
        default_value=1.0,
        reason="cnn3d tests at the model's input size",
        help="accepted as 1.0 only (default: 1.0)",
    )
    g.add_argument(
        "--no_cuda", dest="device", action="store_const", const="cpu", help="--device cpu"
    )
    g.add_argument(
        "--inference_batch_size",
        action=Refused,
        nargs=1,
        advice="counted videos; cnn3d's --batch-size counts clips per forward pass",
        help=argparse.SUPPRESS,
    )
    g.add_argument(
        "--inference_no_average",
        action=Refused,
        advice="keeps clip scores: `cnn3d classify` writes every clip's",
        help=argparse.SUPPRESS,
    )
    g.add_argument(
        "--no_softmax_in_test",
        action=Refused,
        advice="is not offered: `cnn3d test` averages softmax probabilities (the paper's video "
        "scores); `cnn3d classify` writes each clip's",
        help=argparse.SUPPRESS,
    )


def add_video_job(p, command: str) -> None:
    """The sister tool's options (video-classification-3d-cnn-pytorch) for classify/features:
    the model options are checked against the checkpoint, which decides."""
    g = p.add_argument_group("the sister tool's options (video-classification-3d-cnn-pytorch)")
    g.add_argument(
        "--input",
        dest="input_list",
        help="a text file of video names, one per line (joined onto --video_root) (default: "
        "none; the inputs above)",
    )
    g.add_argument(
        "--video_root",
        help="where the names of --input are; each output entry's video is the name as listed, "
        "as the sister tool wrote it (default: the list's folder)",
    )
    g.add_argument(
        "--mode",
        choices=["score", "feature"],
        help=f"score: `cnn3d classify`; feature: `cnn3d features` (this is {command}) "
        "(default: this command's)",
    )
    g.add_argument("--model_name", help="checked against the checkpoint (default: not checked)")
    g.add_argument(
        "--model_depth",
        type=depth,
        help="checked against the checkpoint (default: not checked)",
    )
    g.add_argument(
        "--resnet_shortcut",
        choices=["A", "B"],
        help="checked against the checkpoint (default: not checked)",
    )
    g.add_argument(
        "--wide_resnet_k",
        type=positive_float,
        help="checked against the checkpoint (default: not checked)",
    )
    g.add_argument(
        "--resnext_cardinality",
        type=positive_int,
        help="checked against the checkpoint (default: not checked)",
    )
    g.add_argument(
        "--no_cuda", dest="device", action="store_const", const="cpu", help="--device cpu"
    )
