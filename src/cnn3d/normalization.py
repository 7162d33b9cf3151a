"""Input normalisation presets: which pixel range and mean/std a network was trained with.

The data side applies them; a loaded model records which one it expects so that every command
preprocesses its input the way the weights were trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import UsageError


@dataclass(frozen=True)
class Normalization:
    """`(pixel * value_range / 255 - mean) / std`, per channel, with mean/std in value_range units.
    `channel_order` "bgr": an RGB clip's channels are reversed first (C3D's Caffe weights), and
    mean/std are given in BGR order."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    value_range: float = 1.0
    channel_order: str = "rgb"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(
            d["name"],
            tuple(d["mean"]),
            tuple(d["std"]),
            float(d["value_range"]),
            d.get("channel_order", "rgb"),
        )

    def for_channels(self, n_channels: int) -> Normalization:
        """Cut mean/std to the first `n_channels` (2 for optical flow), as the original does."""
        if n_channels == len(self.mean):
            return self
        return Normalization(
            self.name, self.mean[:n_channels], self.std[:n_channels], self.value_range, "rgb"
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
    # DeepMind's I3D and its ports: [-1, 1] (x / 255 * 2 - 1).
    "i3d": Normalization("i3d", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # C3D's Sports-1M Caffe weights: 0-255 BGR minus the Sports-1M mean (B, G, R).
    "c3d": Normalization("c3d", (90.25, 97.66, 101.41), (1.0, 1.0, 1.0), 255.0, "bgr"),
    # pytorchvideo's model hub (Slow, SlowFast, X3D, CSN...): mean 0.45, std 0.225.
    "pytorchvideo": Normalization("pytorchvideo", (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)),
    # [0, 1] with no mean or std (video_features' S3D input).
    "unit": Normalization("unit", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def get_normalization(name: str) -> Normalization:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(
            f"unknown normalisation preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None


# The 2018 code's means and its one std, in 0-255 units (divided by --norm_value).
MEANS_2018 = {
    "activitynet": (114.7748, 107.7354, 99.4750),
    "kinetics": (110.63666788, 103.16065604, 96.29023126),
}
STD_2018 = (38.7568578, 37.88248729, 40.02898126)


def original_normalization(
    mean_dataset: str,
    era: int,
    *,
    value_scale: float = 1.0,
    norm_value: float = 1.0,
    no_mean_norm: bool = False,
    no_std_norm: bool = False,
    std_norm: bool = False,
) -> Normalization:
    """The input the original's flags describe. `era` 2018 (`--norm_value`, `--std_norm`):
    pixels / norm_value minus that code's ActivityNet or Kinetics mean (/ norm_value), divided
    by its std only with `std_norm`. `era` 2020 (`--value_scale`, `--no_mean_norm`,
    `--no_std_norm`): [0, 1] x value_scale, minus the 2020 preset's mean and divided by its std
    (both x value_scale); `no_mean_norm` makes the mean 0, `no_std_norm` the std 1."""
    if era == 2018:
        if mean_dataset not in MEANS_2018:
            raise UsageError(
                f"the 2018 code's --mean_dataset is activitynet or kinetics, not {mean_dataset!r}"
            )
        mean = (
            (0.0,) * 3 if no_mean_norm else tuple(m / norm_value for m in MEANS_2018[mean_dataset])
        )
        std = tuple(s / norm_value for s in STD_2018) if std_norm else (1.0,) * 3
        value_range = 255.0 / norm_value
    else:
        preset = get_normalization(mean_dataset)
        mean = (0.0,) * 3 if no_mean_norm else tuple(m * value_scale for m in preset.mean)
        std = (1.0,) * 3 if no_std_norm else tuple(s * value_scale for s in preset.std)
        value_range = float(value_scale)
    found = Normalization(mean_dataset, mean, std, value_range)
    for preset in PRESETS.values():  # the same numbers as a preset: give its name
        if (preset.mean, preset.std, preset.value_range) == (mean, std, value_range):
            return preset
    return Normalization(f"{mean_dataset} ({era} flags)", found.mean, found.std, value_range)
