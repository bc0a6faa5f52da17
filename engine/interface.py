"""What the search and the UCI loop see of a network (torch-free, so that ``search`` never imports torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

#: Evaluator kinds the ``Backend`` option accepts ("auto" picks what the file is).
BACKENDS = ("auto", "fp32", "dynamic-int8", "static-int8", "onnx-fp32", "onnx-int8")


@dataclass
class ModelInfo:
    """What is known about a loaded network: shown in ``info string`` and by ``azengine bench``."""

    path: str
    kind: str
    blocks: int
    filters: int
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for a user: file, size of the network, backend and what the file says of itself."""
        text = f"{self.path}: {self.blocks}x{self.filters} {self.kind}"
        if desc := self.metadata.get("description"):
            text += f" ({desc})"
        return text


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
