"""Training: the settings (`config`), a run's setup (`setup`, `data`, `resume`), the loop
(`loop`: `train` on one screen), what checkpoints hold and when they are written (`state`,
`epoch_files`), the logs and the result folder's lock.

`from cnn3d.training import TrainConfig, train` (imported when first used: the settings are
torch-free, the loop is not)."""

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str):
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    if name == "train":
        from .loop import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
