"""The types of option values, checked as they are parsed (a flag, a config file's key): each
raises `argparse.ArgumentTypeError` with what was wrong, which argparse and `cli/config.py` print
as one line naming the option. Torch-free: `--help` and argument errors answer at once."""

from __future__ import annotations

import argparse
import math
import re


def finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in 0..{2**32 - 1}, not {value}")
    return value


def unit_interval(text: str) -> float:
    value = finite(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {text}")
    return value


DEVICE = re.compile(r"^(cpu|cuda|mps|xpu)(:\d+)?$")


def device(text: str) -> str:
    """cpu, cuda, cuda:N (mps, xpu): checked before torch is imported."""
    if not DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: cpu, cuda or cuda:N")
    return text


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def resize_size(text: str) -> int | tuple[int, int]:
    """A resize: N (the short side, in pixels) or WxH (every frame stretched to exactly W wide
    and H high, e.g. 340x256)."""
    width, sep, height = text.strip().lower().partition("x")
    if not sep:
        return positive_int(width)
    if not (width.isdigit() and height.isdigit()) or int(width) < 1 or int(height) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: N (the short side) or WxH with W, H at least 1 (340x256)"
        )
    return int(width), int(height)


def depth(text: str) -> int | str:
    """A model depth: a positive int (50), or a variant name (X3D's "s")."""
    text = text.strip().lower()
    if text.isdigit():
        return positive_int(text)
    if not text.replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"{text!r} is not a depth (a number, or a name like m)")
    return text


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def non_negative_float(text: str) -> float:
    value = finite(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def positive_float(text: str) -> float:
    value = finite(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def fraction(text: str) -> float:
    value = finite(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {text}")
    return value
