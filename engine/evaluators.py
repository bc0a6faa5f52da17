"""Evaluator backends: run a network on encoded planes and return (policy logits, values).

Every backend takes any batch size, runs under ``torch.inference_mode()`` and returns numpy arrays:
logits ``(B, 4608)`` float32 and values ``(B,)`` float32 in [-1, 1] from the side to move's view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .interface import Evaluator, UniformEvaluator

__all__ = ["Evaluator", "ModelInfo", "TorchEvaluator", "UniformEvaluator", "set_torch_threads"]


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


def set_torch_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count (process-wide); None leaves torch's default."""
    if threads is not None and threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class TorchEvaluator:
    """Runs a torch module (eager, quantized or TorchScript) that maps planes to (logits, values)."""

    def __init__(self, module: nn.Module, kind: str, info: ModelInfo, threads: int | None = None) -> None:
        self.module = module
        self.kind = kind
        self.info = info
        self.threads = threads
        set_torch_threads(threads)

    def set_threads(self, threads: int) -> None:
        """Use ``threads`` intra-op threads (torch's setting is process-wide)."""
        self.threads = threads
        set_torch_threads(threads)

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Policy logits ``(B, 4608)`` and values ``(B,)`` for float32 planes ``(B, 16, 8, 8)``."""
        x = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))
        with torch.inference_mode():
            logits, values = self.module(x)
        return logits.float().numpy(), values.float().reshape(-1).numpy()
