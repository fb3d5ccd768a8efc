"""Everything edgec does to an ONNX file before any pass runs: load, check, bind."""

from .binding import Bindings, bind_inputs, parse_const_spec, parse_shape_spec
from .loader import DEFAULT_MAX_MODEL_BYTES, LoadedModel, load_model

__all__ = [
    "DEFAULT_MAX_MODEL_BYTES",
    "Bindings",
    "LoadedModel",
    "bind_inputs",
    "load_model",
    "parse_const_spec",
    "parse_shape_spec",
]
