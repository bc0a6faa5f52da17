"""The torch evaluator: runs an eager, quantized or TorchScript module that maps planes to (logits, values).

Every call runs under ``torch.inference_mode()`` and returns numpy arrays: logits ``(B, 4608)`` float32
and values ``(B,)`` float32 in [-1, 1] from the side to move's view.

torch 2.13 marks ``torch.ao.quantization`` and ``torch.jit`` deprecated; :func:`quiet` silences their
warnings, which would otherwise reach a GUI through stderr on every load.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from ..interface import ModelInfo, NetworkEvaluator

#: Name of the JSON metadata file inside azengine's TorchScript archives.
METADATA_FILE = "azengine.json"


@contextmanager
def quiet() -> Iterator[None]:
    """Hide torch's deprecation, user and tracer warnings (quantization and TorchScript) inside the block."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning):
            warnings.filterwarnings("ignore", category=category)
        yield


def set_qengine(name: str) -> None:
    """Select the quantized kernel library (x86, fbgemm, onednn, qnnpack); ValueError if not built."""
    if name not in torch.backends.quantized.supported_engines:
        raise ValueError(
            f"quantized engine {name!r} is not available; this torch has "
            f"{', '.join(torch.backends.quantized.supported_engines)}"
        )
    torch.backends.quantized.engine = name


def set_torch_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count (process-wide); None leaves torch's default."""
    if threads is not None and threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class TorchEvaluator(NetworkEvaluator):
    """Runs a torch module (eager, quantized or TorchScript) that maps planes to (logits, values), or for a
    WDL network (``info.has_wdl``) to (logits, win/draw/loss probabilities)."""

    def __init__(self, module: nn.Module, kind: str, info: ModelInfo, threads: int | None = None) -> None:
        self.module = module
        self.kind = kind
        self.info = info
        self.threads = threads
        self.has_wdl = info.has_wdl
        set_torch_threads(threads)

    def set_threads(self, threads: int) -> None:
        """Use ``threads`` intra-op threads (torch's setting is process-wide)."""
        self.threads = threads
        set_torch_threads(threads)

    def _run(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))
        with torch.inference_mode():
            logits, second = self.module(x)
        return logits.float().numpy(), second.float().numpy()
