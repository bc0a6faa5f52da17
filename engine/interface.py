"""The evaluator interface the search calls (torch-free, so that ``search`` never imports torch)."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Evaluator(Protocol):
    """A network backend: any batch of encoded positions in, policy logits and values out."""

    kind: str

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Policy logits ``(B, 4608)`` float32 and values ``(B,)`` float32 in [-1, 1] (side to move's view)
        for float32 planes ``(B, 16, 8, 8)``."""
        ...


class UniformEvaluator:
    """Equal logits and a zero value for every position: no network work (tests, tree-speed benchmark)."""

    kind = "uniform"

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Zero logits ``(B, 4608)`` and zero values ``(B,)``."""
        n = len(planes)
        return np.zeros((n, 4608), dtype=np.float32), np.zeros(n, dtype=np.float32)
