"""Live video: a stream classified as it plays, with bounded memory and latency.

A reader thread decodes the source (an RTSP/RTMP/HTTP/UDP/HLS URL, a file paced at its own rate
with `realtime`, `-` for standard input, a FIFO, or a camera through OpenCV) and turns each
frame into the model's input size at once (the evaluation transform: short side resized, centre
crop), keeping only the last `clip_length` frames. Every `window_stride` frames a window is
complete and is handed to the model through a slot of one: when the model is still busy with
the previous window, the waiting one is replaced by the newer and counted as skipped, so
nothing queues without bound and the output stays current. An input that ends (a file, a FIFO,
standard input) ends with `classify`'s last, loop-padded window where frames are left over, so
a file gives `classify`'s windows. A stream (a URL) that stalls or ends is opened again up to
`reconnects` times with exponential backoff, then reported; each opening that gives frames is
a new `stream_segment`: its windows start at its own first frame, and smoothing starts again.

Each scored window is a dict (`window`, `stream_segment`, `first_frame`, `stream_time`,
`wall_time`, `latency_s`, `top_k`, and with smoothing `smoothed_top_k`) for JSON lines.
"""

from __future__ import annotations

import collections
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..data.sampling import loop_pad
from ..errors import UsageError

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://",
               "rtp://", "srt://", "tcp://")  # fmt: skip


@dataclass(frozen=True)
class LiveConfig:
    """How a stream is read and scored. `smoothing`: "none", "ema:A" (scores = A x new +
    (1 - A) x before) or "mean:K" (the mean of the last K windows)."""

    window_stride: int | None = None  # None: one clip span
    realtime: bool = False  # a file played at its own rate (a stream always is)
    reconnects: int = 5
    backoff_s: float = 0.5  # first wait before reconnecting; doubles each time
    stall_s: float = 5.0  # no frame for this long: the source is taken as stalled
    smoothing: str = "none"
    topk: int = 5
    max_windows: int | None = None  # stop after this many scored windows
    # the end of a file or pipe: "pad", classify's last loop-padded window; "drop": complete
    # windows only
    tail: str = "pad"


@dataclass
class Window:
    index: int  # the k-th complete window of the stream (counting skipped ones)
    segment: int  # the opening of the source it came from (0, then 1 after a reconnect, ...)
    first_frame: int  # 0-based, counted over every opening of the source
    stream_time: float | None  # of its last frame, seconds from the stream's start
    arrived: float  # time.monotonic() when its last frame was decoded
    clip: torch.Tensor  # uint8 [C, T, H, W]


@dataclass
class LiveStats:
    frames: int = 0
    windows: int = 0  # complete windows (scored + skipped)
    scored: int = 0
    skipped: int = 0
    reconnects: int = 0
    model_s: float = 0.0  # time spent scoring
    latency_s: float = 0.0  # of the last scored window
    fps: float | None = None
    ended: str = ""  # why the stream ended
    broken: bool = False  # it ended on an error (a file or pipe that cannot be read on)

    def line(self, stride: int) -> str:
        per_window = self.model_s / self.scored if self.scored else 0.0
        rtf = f"{(stride / self.fps) / per_window:.2f}x" if per_window and self.fps else "n/a"
        return (
            f"{self.frames} frames, {self.scored} windows scored, {self.skipped} skipped "
            f"(the model was busy), real-time factor {rtf}, latency {self.latency_s:.2f} s"
            + (f", {self.reconnects} reconnect(s)" if self.reconnects else "")
        )


def parse_smoothing(text: str) -> tuple[str, float]:
    if text == "none":
        return "none", 0.0
    kind, _, value = text.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if kind == "ema" and 0 < number <= 1:
        return kind, number
    if kind == "mean" and number >= 1 and number == int(number):
        return kind, number
    raise UsageError(f"--smooth {text!r}: give none, ema:A (0 < A <= 1) or mean:K (K >= 1)")


class Smoother:
    def __init__(self, spec: str):
        self.kind, self.value = parse_smoothing(spec)
        self.reset()

    def reset(self) -> None:
        """Forget the windows so far (a new stream segment: its scores owe nothing to before)."""
        self.state: torch.Tensor | None = None
        self.recent: collections.deque = collections.deque(maxlen=max(1, int(self.value or 1)))

    def __call__(self, probs: torch.Tensor) -> torch.Tensor | None:
        if self.kind == "ema":
            a = self.value
            self.state = probs if self.state is None else a * probs + (1 - a) * self.state
            return self.state
        if self.kind == "mean":
            self.recent.append(probs)
            return torch.stack(list(self.recent)).mean(0)
        return None


def is_url(source: str) -> bool:
    return source.lower().startswith(URL_SCHEMES)


def is_camera(source: str) -> bool:
    return source.isdigit() or source.startswith("/dev/video")


def is_live(source: str) -> bool:
    """Whether frames come at the sender's pace (a stream, a camera, a pipe)."""
    import os
    import stat

    if is_url(source) or is_camera(source) or source == "-":
        return True
    try:
        return stat.S_ISFIFO(os.stat(source).st_mode)
    except OSError:
        return False


def frames_of(
    source: str, config: LiveConfig, short_side: int
) -> Iterator[tuple[np.ndarray, float | None]]:
    """(RGB frame [H, W, 3], stream time) for every frame of one opening of the source."""
    if is_camera(source):
        yield from camera_frames(source)
        return
    import av

    from ..data.sources.video import frame_array

    target = sys.stdin.buffer if source == "-" else source
    options = {"timeout": (config.stall_s, config.stall_s)} if is_url(source) else {}
    try:
        container = av.open(target, **options)
    except (av.error.FFmpegError, OSError) as error:
        raise ConnectionError(f"{source}: cannot be opened ({_problem(error, config)})") from None
    try:
        if not container.streams.video:
            raise ConnectionError(f"{source}: no video stream in it")
        stream = container.streams.video[0]
        # slice threads: each frame leaves the decoder as soon as it is complete (frame
        # threads would hold back one frame per thread: latency, and frames lost at a stall)
        stream.thread_type = "SLICE"
        first = None
        paced = config.realtime and not is_live(source)
        clock = time.monotonic()
        for frame in container.decode(stream):
            t = None if frame.time is None else float(frame.time)
            if paced and t is not None:  # a file played at its own rate
                first = t if first is None else first
                delay = clock + t - first - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield frame_array(frame, short_side), t
    except av.error.FFmpegError as error:
        raise ConnectionError(f"{source}: {_problem(error, config)}") from None
    finally:
        container.close()


def _problem(error: Exception, config: LiveConfig) -> str:
    """An FFmpeg error in words: its timeout interrupts the read with AVERROR_EXIT ("Immediate
    exit requested"), which means that no data came for `stall_s`."""
    import av

    if isinstance(error, av.error.ExitError):
        return f"no data within --stall-timeout ({config.stall_s:g} s)"
    return str(error)


def camera_frames(source: str) -> Iterator[tuple[np.ndarray, float | None]]:
    try:
        import cv2
    except ImportError:
        raise UsageError(
            f"{source}: a camera is read through OpenCV: pip install opencv-python-headless"
        ) from None
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise ConnectionError(f"{source}: the camera cannot be opened")
    start = time.monotonic()
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                raise ConnectionError(f"{source}: the camera stopped giving frames")
            yield np.ascontiguousarray(bgr[..., ::-1]), time.monotonic() - start
    finally:
        capture.release()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Reader(threading.Thread):
    """Decodes the source, keeps the last `length` frames (already at the model's size), and
    puts each complete window in a slot of one (a newer window replaces a waiting one)."""

    def __init__(self, source, config: LiveConfig, length: int, stride: int, transform,
                 short_side: int, stats: LiveStats, renderer=None, log=_stderr):  # fmt: skip
        super().__init__(daemon=True)
        self.renderer = renderer  # render.StreamRenderer: each frame with `label`
        self.label: str | None = None  # the latest scored window's top label
        self.source, self.config, self.length, self.stride = source, config, length, stride
        self.transform, self.short_side, self.stats, self.log = transform, short_side, stats, log
        self.frames: collections.deque = collections.deque(maxlen=length)
        self.slot: Window | None = None
        self.ready = threading.Condition()
        self.done = False
        self.stop = threading.Event()
        self.position = 0  # frames seen over every opening of the source
        self.segment = 0  # the opening that gave the frames being read
        self.in_segment = 0  # frames of this segment so far
        self.next_index = 0  # the index of the next complete window
        self.origin: float | None = None  # the stream time of its first frame
        self.last_time: float | None = None  # the stream time of the latest frame
        self.error: BaseException | None = None
        # a file read as fast as it decodes waits for the model (every window scored); a
        # stream, a camera, a pipe or a file played in real time does not: it skips
        self.lossless = not (is_live(source) or config.realtime)

    def run(self) -> None:
        try:
            self.read_with_reconnects()
        except BaseException as error:  # handed to the scoring thread
            self.error = error
        with self.ready:
            self.done = True
            self.ready.notify()

    def read_with_reconnects(self) -> None:
        attempts, wait = 0, self.config.backoff_s
        while not self.stop.is_set():
            opened = False
            try:
                for rgb, t in frames_of(self.source, self.config, self.short_side):
                    if not opened:
                        opened = True
                        self.start_segment()
                    self.add(rgb, t)
                    attempts, wait = 0, self.config.backoff_s  # frames again: a fresh budget
                    if self.stop.is_set():
                        return
                if not is_url(self.source):  # a file, a pipe, standard input: done
                    if self.config.tail == "pad":
                        self.pad_tail()
                    self.stats.ended = "the end of the input"
                    return
                problem = "the stream ended"
            except ConnectionError as error:
                if not is_url(self.source):  # nothing to reconnect to
                    self.stats.ended, self.stats.broken = str(error), True
                    return
                problem = str(error)
            if self.stop.is_set():  # stopped while it waited for data: no new attempt
                return
            if attempts >= self.config.reconnects:
                self.stats.ended = f"{problem}; gave up after {attempts} reconnect(s)"
                return
            attempts += 1
            self.stats.reconnects += 1
            self.log(f"live: {problem}; reconnecting in {wait:g} s ({attempts}/"
                     f"{self.config.reconnects})")  # fmt: skip
            if self.stop.wait(wait):
                return
            wait *= 2

    def start_segment(self) -> None:
        """An opening that gives frames after one that did: a new segment, whose windows
        start at its own first frame (no window spans the gap)."""
        if self.in_segment:
            self.segment += 1
            self.in_segment = 0
            self.frames.clear()

    def add(self, rgb: np.ndarray, t: float | None) -> None:
        if t is not None:
            self.origin = t if self.origin is None else self.origin
            t -= self.origin
        if self.renderer is not None:
            self.renderer.write(rgb, t, self.label)
        frame = torch.from_numpy(rgb).permute(2, 0, 1)[None]  # [1, 3, H, W]
        self.frames.append(self.transform(frame))  # [3, 1, h, w]: the model's size already
        self.position += 1
        self.in_segment += 1
        self.stats.frames += 1
        self.last_time = t
        if self.stats.fps is None and t and self.position > 1:
            self.stats.fps = (self.position - 1) / t
        start = self.in_segment - self.length
        if start < 0 or start % self.stride:
            return
        self.put(self.position - self.length, torch.cat(list(self.frames), dim=1))

    def pad_tail(self) -> None:
        """At the end of the input, `classify`'s last window (`data.sampling.sliding_clips`,
        tail "pad"): where frames are left after the last complete window, the window at the
        next start, loop-padded with its own frames; an input shorter than one clip gives one."""
        n = self.in_segment
        if n == 0:
            return
        if n >= self.length:
            last = (n - self.length) // self.stride * self.stride  # the last complete start
            if last + self.length >= n:
                return  # every frame is in a window
            start = last + self.stride
        else:
            start = 0
        if start >= n:  # a stride longer than a clip leaves frames out, as classify does
            return
        have = list(self.frames)[-(n - start) :]
        order = loop_pad(np.arange(len(have)), self.length)
        self.put(self.position - len(have), torch.cat([have[i] for i in order], dim=1))

    def put(self, first_frame: int, clip: torch.Tensor) -> None:
        """The newest window into the slot: it replaces a waiting one (counted as skipped),
        or, read losslessly, waits until the slot is free."""
        window = Window(self.next_index, self.segment, first_frame, self.last_time,
                        time.monotonic(), clip)  # fmt: skip
        self.next_index += 1
        with self.ready:
            while self.lossless and self.slot is not None and not self.stop.is_set():
                self.ready.wait(0.5)
            self.stats.windows += 1
            if self.slot is not None:
                self.stats.skipped += 1
            self.slot = window
            self.ready.notify()

    def take(self) -> Window | None:
        """The newest complete window (waiting for one), or None when the source is done."""
        with self.ready:
            while self.slot is None and not self.done:
                self.ready.wait(0.5)
            window, self.slot = self.slot, None
            self.ready.notify()  # a lossless reader waits for the slot
            return window


def classify_live(
    source: str,
    score: Callable[[torch.Tensor], torch.Tensor],
    spec,
    class_names: list[str],
    config: LiveConfig,
    emit: Callable[[dict], None],
    should_stop: Callable[[], bool] = lambda: False,
    status: Callable[[LiveStats], None] | None = None,
    render=None,
    stats: LiveStats | None = None,
    log: Callable[[str], None] = _stderr,
) -> LiveStats:
    """Score `source`'s windows as they complete; `score` maps a uint8 clip [C, T, H, W] to
    class probabilities; `emit` gets each window's dict; `render` (a path) also writes the
    stream with each frame's latest label; `stats` (filled as it goes) says how far it got,
    also when a KeyboardInterrupt ends it; `log` gets the lines meant for standard error."""
    from ..data.transforms import EvalTransform
    from ..evaluation.metrics import top_k

    stride = config.window_stride or spec.clip_length
    stats = stats if stats is not None else LiveStats()
    transform = EvalTransform(spec.sample_size, "center")
    renderer = None
    if render is not None:
        from .render import StreamRenderer

        renderer = StreamRenderer(render)
    size = None if renderer else spec.sample_size  # a rendered stream keeps its full frames
    reader = Reader(source, config, spec.clip_length, stride, transform, size, stats, renderer,
                    log)  # fmt: skip
    smoother = Smoother(config.smoothing)
    segment = 0
    reader.start()
    try:
        while not should_stop():
            window = reader.take()
            if window is None:
                break
            start = time.monotonic()
            probs = score(window.clip)
            now = time.monotonic()
            stats.model_s += now - start
            stats.scored += 1
            stats.latency_s = now - window.arrived
            entry = {
                "window": window.index,
                "stream_segment": window.segment,
                "first_frame": window.first_frame,
                "stream_time": window.stream_time,
                "wall_time": time.time(),
                "latency_s": round(stats.latency_s, 4),
                "top_k": top_k(probs, class_names, config.topk),
            }
            if window.segment != segment:
                segment = window.segment
                smoother.reset()
            smoothed = smoother(probs)
            if smoothed is not None:
                entry["smoothed_top_k"] = top_k(smoothed, class_names, config.topk)
            best = entry.get("smoothed_top_k", entry["top_k"])[0]
            reader.label = f"{best['label']} {best['score']:.2f}"
            emit(entry)
            if status:
                status(stats)
            if config.max_windows and stats.scored >= config.max_windows:
                stats.ended = f"{config.max_windows} windows scored (--max-windows)"
                break
    except KeyboardInterrupt:
        log("live: stopping (no reconnect; the windows scored so far are written)")
        raise
    finally:
        reader.stop.set()
        reader.join(timeout=config.stall_s + 1)  # a blocked read ends by the stall timeout
        if renderer is not None and not reader.is_alive():
            renderer.close()
    if reader.error is not None:
        raise reader.error
    return stats


def model_scorer(model, runtime) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 clip [C, T, H, W] -> class probabilities, through a PyTorch model (on the
    runtime's device and precision) or an exported one (`runner.Runner`)."""
    from .runner import Runner

    runner = Runner(model, runtime)

    def score(clip: torch.Tensor) -> torch.Tensor:
        return runner.logits(clip[None])[0].float().softmax(0).cpu()

    return score
