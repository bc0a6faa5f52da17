"""Planes for an evaluator from python-chess boards, in the input format it declares (``input_format``).

For Python callers that hand boards to any evaluator (benchmarks, accuracy checks, calibration): azengine's
16 planes (:func:`engine.encoding.encode_batch`) or lc0's 112 with each board's game history
(:func:`engine.nets.lc0.encoding.encode_lc0_batch`). The search builds the same planes in C.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chess
import numpy as np

from .encoding import encode_batch
from .interface import AZ_INPUT, LC0_INPUT, input_format_of
from .nets.lc0.encoding import encode_lc0_batch


def encode_for_format(input_format: str, boards: Sequence[chess.Board]) -> np.ndarray:
    """float32 planes of ``boards`` in ``input_format`` (``AZ_INPUT`` or ``LC0_INPUT``)."""
    if input_format == LC0_INPUT:
        return encode_lc0_batch(boards)
    if input_format == AZ_INPUT:
        return encode_batch(boards)
    raise ValueError(f"unknown input format {input_format!r}; expected {AZ_INPUT} or {LC0_INPUT}")


def encode_for(evaluator: Any, boards: Sequence[chess.Board]) -> np.ndarray:
    """float32 planes of ``boards`` as ``evaluator`` takes them (its ``input_format``)."""
    return encode_for_format(input_format_of(evaluator), boards)
