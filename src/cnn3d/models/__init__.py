"""The 3D CNN model zoo and checkpoint I/O."""

from ..errors import CheckpointError
from .checkpoint import convert, load_model, read_class_names, save_model
from .zoo import (
    FAMILIES,
    ModelSpec,
    build_model,
    check_input_channels,
    count_flops,
    count_parameters,
    input_channels,
    list_models,
    with_spec,
)

__all__ = [
    "FAMILIES",
    "CheckpointError",
    "ModelSpec",
    "build_model",
    "check_input_channels",
    "convert",
    "count_flops",
    "count_parameters",
    "input_channels",
    "list_models",
    "load_model",
    "read_class_names",
    "save_model",
    "with_spec",
]
