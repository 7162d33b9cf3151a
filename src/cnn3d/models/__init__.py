"""The 3D CNN model zoo and checkpoint I/O."""

from .checkpoint import CheckpointError, convert, load_model, read_class_names, save_model
from .zoo import FAMILIES, ModelSpec, build_model, count_flops, count_parameters, list_models

__all__ = [
    "FAMILIES",
    "CheckpointError",
    "ModelSpec",
    "build_model",
    "convert",
    "count_flops",
    "count_parameters",
    "list_models",
    "load_model",
    "read_class_names",
    "save_model",
]
