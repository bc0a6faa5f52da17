"""azengine's engine core: networks and their files, encoding, evaluators, int8 conversion, training.

Public API::

    from engine import AlphaZeroNet, encode_position, encode_batch, move_to_index, load_model, ModelFileError
    ev = load_model(engine.default_model_path(), backend="auto", threads=None)
    logits, values = ev.evaluate(encode_batch(boards))

Packages: :mod:`engine.nets` (network families, model files), :mod:`engine.backends` (evaluators),
:mod:`engine.quant` (int8 conversion), :mod:`engine.training` (data and training).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .bundled import DEFAULT_MODEL_NAME, default_model_path
from .encoding import encode_batch, encode_position, index_to_move, move_to_index
from .errors import ModelFileError
from .interface import BACKENDS, Evaluator, ModelInfo, UniformEvaluator
from .loader import load_for_play, load_model
from .nets.files import read_weights
from .priors import legal_move_indices, masked_softmax, move_priors

# The networks need torch: imported on first use, so that ``import engine`` stays fast (a GUI waits for
# ``uciok`` while the UCI loop starts).
_LAZY = {"AlphaZeroNet": "nets.alphazero", "SEResNet": "nets.seresnet"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL_NAME",
    "AlphaZeroNet",
    "Evaluator",
    "ModelFileError",
    "ModelInfo",
    "SEResNet",
    "UniformEvaluator",
    "default_model_path",
    "encode_batch",
    "encode_position",
    "index_to_move",
    "legal_move_indices",
    "load_for_play",
    "load_model",
    "masked_softmax",
    "move_priors",
    "move_to_index",
    "read_weights",
]
