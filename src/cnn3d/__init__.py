"""cnn3d: train, evaluate and apply 3D CNNs for video action recognition."""

__version__ = "0.1.0"
