"""The bundled demo dataset: small action videos in the UCF-101 layout, written as real files.

Each class is a kind of motion of a random shape (colour, size, place) over a random textured
background: the direction of travel, the sense of rotation, or growing vs shrinking. No single
frame tells the class; only the motion does.

Layout (as UCF-101): `<root>/videos/<Class>/v_<Class>_gGG_cCC.avi` and
`<root>/splits/{classInd.txt, trainlist01.txt, testlist01.txt}`; groups 1..`test_groups` are the
test split, as UCF-101's split 1 holds out groups 1-7.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .annotations import Annotations, build_ucf101, write_annotations
from .prepare import attach_videos, write_video

CLASSES = (
    "MoveRight",
    "MoveLeft",
    "MoveUp",
    "MoveDown",
    "Grow",
    "Shrink",
    "RotateClockwise",
    "RotateCounterClockwise",
)
# The six a small network learns from a few hundred videos in minutes on a CPU; telling the two
# senses of rotation apart at the demo's resolution takes much more data and training.
DEFAULT_CLASSES = CLASSES[:6]


@dataclass(frozen=True)
class SyntheticLayout:
    root: Path
    video_dir: Path
    split_dir: Path
    classes: tuple[str, ...]
    n_videos: int

    @property
    def annotation_path(self) -> Path:
        """Where `write_synthetic_annotations` writes the split-1 annotation file."""
        return self.root / "synthetic_01.json"


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random colour texture plus fine grain, float [H, W, 3] in 0-255."""
    coarse = rng.uniform(0, 255, size=(4 + rng.integers(4), 5 + rng.integers(5), 3))
    ys = np.linspace(0, coarse.shape[0] - 1, height)
    xs = np.linspace(0, coarse.shape[1] - 1, width)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, coarse.shape[0] - 1), np.minimum(x0 + 1, coarse.shape[1] - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x1] * fx
    bottom = coarse[y1][:, x0] * (1 - fx) + coarse[y1][:, x1] * fx
    smooth = top * (1 - fy) + bottom * fy
    return np.clip(smooth * 0.6 + 50 + rng.normal(0, 12, size=(height, width, 3)), 0, 255)


def _shape_mask(kind, u, v, r):
    if kind == "disc":
        return u**2 + v**2 < r**2
    if kind == "bar":
        return (np.abs(u) < r) & (np.abs(v) < r * 0.45)
    # triangle pointing along +u
    return (u > -r * 0.5) & (u < r) & (np.abs(v) < (r - u) * 0.58)


def synthesize_video(
    action: str, rng: np.random.Generator, n_frames: int = 40, height: int = 120, width: int = 160
) -> np.ndarray:
    """uint8 [T, H, W, 3] frames of one random shape doing `action`."""
    t = np.arange(n_frames, dtype=np.float64)[:, None, None]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    radius = rng.uniform(0.10, 0.16) * height
    speed = rng.uniform(1.2, 2.2) * height / 120
    margin = radius * 1.2
    cx0 = rng.uniform(margin, width - margin)
    cy0 = rng.uniform(margin, height - margin)
    dx = dy = 0.0
    if action.startswith("Move"):
        horizontal = action in ("MoveRight", "MoveLeft")
        extent = width if horizontal else height
        travel = min(speed * (n_frames - 1), extent - 2 * margin)
        start = rng.uniform(margin, max(margin, extent - margin - travel))
        step = travel / max(1, n_frames - 1)
        if action in ("MoveLeft", "MoveUp"):
            start, step = extent - start, -step
        if horizontal:
            cx0, dx = start, step
        else:
            cy0, dy = start, step
    angle0 = rng.uniform(0, 2 * np.pi)
    spin = 0.0
    if action.startswith("Rotate"):
        spin = rng.uniform(0.08, 0.14) * (1 if action == "RotateClockwise" else -1)
    growth = 1.0
    if action in ("Grow", "Shrink"):
        growth = rng.uniform(1.8, 2.4) ** (1 if action == "Grow" else -1)
        radius = radius * (0.8 if action == "Grow" else 1.6)
    cx, cy = cx0 + dx * t, cy0 + dy * t
    angle = angle0 + spin * t  # image y points down, so +spin turns clockwise on screen
    r = radius * growth ** (t / max(1, n_frames - 1))
    du, dv = xx - cx, yy - cy
    u = np.cos(angle) * du + np.sin(angle) * dv
    v = -np.sin(angle) * du + np.cos(angle) * dv
    kinds = ("bar", "triangle") if action.startswith("Rotate") else ("disc", "bar", "triangle")
    mask = _shape_mask(kinds[rng.integers(len(kinds))], u, v, r)[..., None]
    colour = rng.uniform(0, 255, size=3)
    background = _background(rng, height, width)
    frames = np.where(mask, colour, background[None])
    frames = frames + rng.normal(0, 4, size=frames.shape)  # sensor noise, new in every frame
    return np.clip(frames, 0, 255).astype(np.uint8)


def write_synthetic_dataset(
    root: str | Path,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    groups: int = 6,
    clips_per_group: int = 3,
    test_groups: int = 2,
    n_frames: int = 40,
    height: int = 120,
    width: int = 160,
    seed: int = 0,
    suffix: str = ".avi",
) -> SyntheticLayout:
    """Write the dataset (skipping videos already there) and its split files."""
    unknown = set(classes) - set(CLASSES)
    if unknown:
        raise UsageError(
            f"unknown synthetic classes {sorted(unknown)}; known: {', '.join(CLASSES)}"
        )
    root = Path(root)
    video_dir, split_dir = root / "videos", root / "splits"
    split_dir.mkdir(parents=True, exist_ok=True)
    train_lines, test_lines = [], []
    for class_index, action in enumerate(classes):
        for group in range(1, groups + 1):
            for clip in range(1, clips_per_group + 1):
                name = f"v_{action}_g{group:02d}_c{clip:02d}{suffix}"
                path = video_dir / action / name
                if not path.exists():
                    rng = np.random.default_rng([seed, class_index, group, clip])
                    frames = synthesize_video(action, rng, n_frames, height, width)
                    write_video(path, frames, fps=25)
                if group <= test_groups:
                    test_lines.append(f"{action}/{name}")
                else:
                    train_lines.append(f"{action}/{name} {class_index + 1}")
    (split_dir / "classInd.txt").write_text(
        "".join(f"{i} {c}\n" for i, c in enumerate(classes, start=1))
    )
    (split_dir / "trainlist01.txt").write_text("\n".join(train_lines) + "\n")
    (split_dir / "testlist01.txt").write_text("\n".join(test_lines) + "\n")
    return SyntheticLayout(
        root, video_dir, split_dir, tuple(classes), len(classes) * groups * clips_per_group
    )


def write_synthetic_annotations(layout: SyntheticLayout) -> Annotations:
    """The split-1 annotation file of a written dataset (`layout.annotation_path`), with every
    video's frame count recorded."""
    annotations = attach_videos(build_ucf101(layout.split_dir, 1), layout.video_dir)
    write_annotations(layout.annotation_path, annotations)
    return annotations
