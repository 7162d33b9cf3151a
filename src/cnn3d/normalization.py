"""Input normalisation presets: which pixel range and mean/std a network was trained with.

The data side applies them; a loaded model records which one it expects so that every command
preprocesses its input the way the weights were trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import UsageError


@dataclass(frozen=True)
class Normalization:
    """`(pixel * value_range / 255 - mean) / std`, per channel, with mean/std in value_range units."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    value_range: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(d["name"], tuple(d["mean"]), tuple(d["std"]), float(d["value_range"]))

    def for_channels(self, n_channels: int) -> Normalization:
        """Cut mean/std to the first `n_channels` (2 for optical flow), as the original does."""
        if n_channels == len(self.mean):
            return self
        return Normalization(
            self.name, self.mean[:n_channels], self.std[:n_channels], self.value_range
        )


PRESETS: dict[str, Normalization] = {
    # The 2018 release: 0-255 RGB minus the ActivityNet mean, no std division.
    "hara2018": Normalization("hara2018", (114.7748, 107.7354, 99.4750), (1.0, 1.0, 1.0), 255.0),
    # The 2020 code's presets on [0, 1] input.
    "kinetics": Normalization("kinetics", (0.4345, 0.4051, 0.3775), (0.2768, 0.2713, 0.2737)),
    "activitynet": Normalization("activitynet", (0.4477, 0.4209, 0.3906), (0.2767, 0.2695, 0.2714)),
    "0.5": Normalization("0.5", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # torchvision's video models (r3d_18, r2plus1d_18, mc3_18).
    "torchvision": Normalization(
        "torchvision", (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)
    ),
}


def get_normalization(name: str) -> Normalization:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(
            f"unknown normalisation preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None
