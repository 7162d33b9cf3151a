"""Make the ActionFormer / CMCS THUMOS14 I3D preset golden: run Finspire13's own extractor
(`extract_features.py`, its `run(...)`) on a small RGB frame folder and a small flow x/y folder
with seeded piergiaj weights, in all the sample modes its features may have come from.

    PYTHONPATH=src python tests/data/goldens/make_presets_actionformer.py EXTRACTOR_CHECKOUT

EXTRACTOR_CHECKOUT: github.com/Finspire13/pytorch-i3d-feature-extraction at d7f5452 (a scratch
checkout, never committed). Writes `presets_actionformer-thumos14-i3d/`: `rgb/image_%05d.jpg`
(20 frames) and `flow/flow_x_%05d.jpg` + `flow_y_%05d.jpg` (17 pairs), all 340 x 256 as the
extractor asserts (written when absent, committed: a JPEG encoder's bytes may change), and
`golden.npz` (per stream: centre_crop [T, 1024]; oversample [10, T, 128], the first 128
features of each of its ten crops, kept small; resize [T, 1024] (RGB); the weight seeds).

What is stubbed, and why: CUDA (`.cuda()` is the identity: CPU, fp32); `pdb.set_trace()`, which
the extractor calls for every crop of every batch in oversample mode (a no-op here);
`Image.ANTIALIAS` (gone from Pillow 10) is `Image.LANCZOS`, the filter it named. The frames are
copied into the names the extractor lists (`img*` in a folder whose name starts with `v`).
"""

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for seeded.py and helpers.py
from helpers import textured_frames  # noqa: E402
from seeded import seeded_state  # noqa: E402

OUT = HERE / "presets_actionformer-thumos14-i3d"
RGB_FRAMES = 20  # (20 - 16) // 4 + 1 = 2 windows (drop, ending before the last frame: 1)
FLOW_FRAMES = 17  # 1 window: (17 - 16) // 4 + 1
SMALL = (60, 80)  # the frames are drawn this size, then stretched to 340 x 256 (small JPEGs)
KEEP = 128  # features kept per oversample crop
SCRATCH = Path("/tmp/af_reference")


def stream_shapes(channels: int) -> dict:
    """piergiaj's keys (i3d_piergiaj/shapes.json, 400 classes), `channels` input channels."""
    shapes = json.loads((HERE / "i3d_piergiaj" / "shapes.json").read_text())
    shapes["Conv3d_1a_7x7.conv3d.weight"][1] = channels
    return shapes


def weight_seeds() -> dict:
    return {
        "rgb": int(np.load(HERE / "i3d_piergiaj" / "golden.npz")["weight_seed"]),
        "flow": int(np.load(HERE / "i3d_piergiaj_flow" / "golden.npz")["weight_seed"]),
    }


def stretched(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image).resize((340, 256), Image.BILINEAR)


def write_inputs() -> None:
    """The committed frames: textured RGB, and flow images as a flow encoder writes them (grey
    128 = no motion) with a moving disc and a gentle gradient."""
    rgb = OUT / "rgb"
    if not rgb.exists():
        rgb.mkdir(parents=True)
        for i, frame in enumerate(textured_frames(RGB_FRAMES, *SMALL, seed=7)):
            stretched(frame).save(rgb / f"image_{i + 1:05d}.jpg", quality=75)
    flow = OUT / "flow"
    if not flow.exists():
        flow.mkdir(parents=True)
        h, w = SMALL
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        for t in range(FLOW_FRAMES):
            disc = np.exp(-((x - (0.2 + 0.6 * t / FLOW_FRAMES) * w) ** 2 + (y - h / 2) ** 2) / 80)
            fx = 128 + 70 * disc + 10 * x / w
            fy = 128 - 40 * disc + 8 * np.sin(0.1 * y + 0.3 * t)
            for prefix, field in (("flow_x", fx), ("flow_y", fy)):
                img = np.clip(field, 0, 255).astype(np.uint8)
                stretched(img).save(flow / f"{prefix}_{t + 1:05d}.jpg", quality=75)


def stub_unused(extractor) -> None:
    """CPU for CUDA, and the oversample loop's debugger call made a no-op."""
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    extractor.pdb = types.SimpleNamespace(set_trace=lambda: None)
    if not hasattr(Image, "ANTIALIAS"):
        Image.ANTIALIAS = Image.LANCZOS


def run_reference(extractor, mode: str, seed: int, sample_mode: str) -> np.ndarray:
    """The extractor's `run` on one video folder: [crops, T, 1024] (crops 10 or 1)."""
    shutil.rmtree(SCRATCH, ignore_errors=True)
    video = SCRATCH / "input" / f"v_{mode}"
    video.mkdir(parents=True)
    if mode == "rgb":
        for f in sorted((OUT / "rgb").iterdir()):
            shutil.copy(f, video / f.name.replace("image_", "img_"))
    else:
        for f in sorted((OUT / "flow").iterdir()):
            shutil.copy(f, video / f.name)
    weights = SCRATCH / f"{mode}.pt"
    torch.save(seeded_state(stream_shapes(3 if mode == "rgb" else 2), seed), weights)
    (SCRATCH / "output").mkdir()
    extractor.run(
        mode=mode, load_model=str(weights), sample_mode=sample_mode, frequency=4,
        input_dir=str(SCRATCH / "input"), output_dir=str(SCRATCH / "output"), batch_size=40,
        usezip=False,
    )  # fmt: skip
    return np.load(SCRATCH / "output" / f"v_{mode}-{mode}.npz")["feature"].astype(np.float32)


def main(checkout: Path) -> None:
    sys.path.insert(0, str(checkout))
    import extract_features

    stub_unused(extract_features)
    torch.set_grad_enabled(False)
    write_inputs()
    seeds = weight_seeds()
    out = {"rgb_weight_seed": np.array(seeds["rgb"]), "flow_weight_seed": np.array(seeds["flow"])}
    for mode in ("rgb", "flow"):
        centre = run_reference(extract_features, mode, seeds[mode], "center_crop")
        ten = run_reference(extract_features, mode, seeds[mode], "oversample")
        out[f"{mode}_center_crop"] = centre[0]
        out[f"{mode}_oversample"] = ten[..., :KEEP]
        if mode == "rgb":
            out["rgb_resize"] = run_reference(extract_features, mode, seeds[mode], "resize")[0]
        print(mode, centre.shape, ten.shape)
    np.savez_compressed(OUT / "golden.npz", **out)
    shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
