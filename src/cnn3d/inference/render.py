"""A classified video written again with each clip's top label drawn on its frames (`classify
--render`), as the sister tool's result videos were: H.264 through PyAV, the source's size and
frame rate, the text in matplotlib's DejaVu Sans (shipped with an installed package, so no system
font is assumed) on a dark box, 5% of the short side high."""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..data.sources import upright
from ..files import atomic_write


def _font(size: int):
    from matplotlib import font_manager
    from PIL import ImageFont

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    return ImageFont.truetype(path, size)


def label_of_frame(entry: dict, frame: int, fps: float | None) -> str | None:
    """The text for 0-based source frame `frame`: the clip whose time span (or, without a frame
    rate, 1-based segment) holds it; None after the last clip (`--tail drop`)."""
    for clip in entry["clips"]:
        if clip.get("time") and fps:
            start, end = clip["time"]
            inside = start <= frame / fps + 1e-9 < end
        else:
            inside = clip["segment"][0] <= frame + 1 <= clip["segment"][1]
        if inside:
            return f"{clip['label']} {max(clip['scores']):.2f}"
    return None


def render_video(video: Path, entry: dict, out: Path) -> None:
    """Write `out` (an .mp4) from `video` with the labels of `entry` (a `classify` entry)."""
    import av

    def write(tmp):
        with av.open(str(video)) as source, av.open(tmp, "w", format="mp4") as target:
            stream = source.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            fps = float(rate)
            encoder = None
            font = None
            for index, frame in enumerate(source.decode(stream)):
                array = upright(frame, frame.to_ndarray(format="rgb24"))
                h, w = array.shape[:2]
                if encoder is None:
                    encoder = target.add_stream("libx264", rate=rate)
                    encoder.width, encoder.height = w - w % 2, h - h % 2
                    encoder.pix_fmt = "yuv420p"
                    encoder.options = {"crf": "20", "preset": "veryfast"}
                    font = _font(max(10, round(0.05 * min(h, w))))
                text = label_of_frame(entry, index, fps)
                if text:
                    array = draw_label(array, text, font)
                array = np.ascontiguousarray(array[: encoder.height, : encoder.width])
                target.mux(encoder.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
            if encoder is not None:
                target.mux(encoder.encode())

    atomic_write(out, write)


def draw_label(array: np.ndarray, text: str, font) -> np.ndarray:
    """`text` in white on a dark box at the frame's top left."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(array)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(2, (bottom - top) // 4)
    draw.rectangle((0, 0, right - left + 2 * pad, bottom + 2 * pad), fill=(0, 0, 0))
    draw.text((pad - left, pad), text, font=font, fill=(255, 255, 255))
    return np.asarray(image)


class StreamRenderer:
    """A live stream written as it plays (`classify --live --render OUT.mp4`): each frame
    with the latest label, at its stream time (a variable frame rate where the stream has
    one); written to a temporary file, renamed to `out` when closed."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.out.name}.", suffix=".mp4",
                                        dir=self.out.parent)  # fmt: skip
        os.close(fd)
        self.container = None
        self.encoder = None
        self.font = None
        self.last_pts = -1

    def write(self, array: np.ndarray, t: float | None, text: str | None) -> None:
        import av

        h, w = array.shape[:2]
        if self.encoder is None:
            self.container = av.open(self.tmp, "w", format="mp4")
            self.encoder = self.container.add_stream("libx264", rate=25)
            self.encoder.width, self.encoder.height = w - w % 2, h - h % 2
            self.encoder.pix_fmt = "yuv420p"
            self.encoder.time_base = Fraction(1, 1000)
            self.encoder.options = {"crf": "20", "preset": "veryfast"}
            self.font = _font(max(10, round(0.05 * min(h, w))))
        if text:
            array = draw_label(array, text, self.font)
        array = np.ascontiguousarray(array[: self.encoder.height, : self.encoder.width])
        frame = av.VideoFrame.from_ndarray(array, format="rgb24")
        pts = self.last_pts + 40 if t is None else round(1000 * t)
        frame.pts = max(pts, self.last_pts + 1)  # strictly increasing
        frame.time_base = Fraction(1, 1000)
        self.last_pts = frame.pts
        self.container.mux(self.encoder.encode(frame))

    def close(self) -> None:
        if self.container is None:
            os.unlink(self.tmp)
            return
        self.container.mux(self.encoder.encode())
        self.container.close()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp makes 0600: the umask's mode, as any output
        os.replace(self.tmp, self.out)
