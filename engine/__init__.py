"""azengine's engine core: the network, position and move encoding, model files and evaluators.

Public API::

    from engine import AlphaZeroNet, encode_position, encode_batch, move_to_index, load_model, ModelFileError
    ev = load_model(engine.default_model_path(), backend="auto", threads=None)
    logits, values = ev.evaluate(encode_batch(boards))
"""

from __future__ import annotations

from importlib import import_module, resources
from pathlib import Path
from typing import Any

from .encoding import encode_batch, encode_position, index_to_move, move_to_index
from .errors import ModelFileError
from .interface import Evaluator, UniformEvaluator
from .priors import legal_move_indices, masked_softmax, move_priors

#: Backend names the ``Backend`` option accepts ("auto" picks what the file is).
BACKENDS = ("auto", "fp32", "dynamic-int8", "static-int8", "onnx-fp32", "onnx-int8")

# Names that need torch are imported on first use, so that ``import engine`` stays fast (a GUI
# waits for ``uciok`` while the UCI loop starts).
_LAZY = {
    "AlphaZeroNet": "network",
    "ModelInfo": "evaluators",
    "load_model": "model_file",
    "read_weights": "model_file",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")

DEFAULT_MODEL_NAME = "azengine_default.pt"


def default_model_path() -> Path:
    """Path of the network bundled with the package (fp32 state_dict; its int8 siblings lie beside it)."""
    return Path(str(resources.files("engine") / "models" / DEFAULT_MODEL_NAME))


__all__ = [
    "BACKENDS",
    "AlphaZeroNet",
    "Evaluator",
    "ModelFileError",
    "ModelInfo",
    "UniformEvaluator",
    "default_model_path",
    "encode_batch",
    "encode_position",
    "index_to_move",
    "legal_move_indices",
    "load_model",
    "masked_softmax",
    "move_priors",
    "move_to_index",
    "read_weights",
]
