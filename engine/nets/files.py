"""Model files on disk and what they are: :func:`read_weights` recognises a file without running it.

Kinds: fp32 ``state_dict`` s (pytorch-alpha-zero's format), pytorch-alpha-zero's dynamic-int8
``state_dict`` s, azengine's TorchScript int8 archives, and ONNX models with azengine metadata. An ONNX
file is read without importing torch; the torch formats are read by :mod:`engine.nets.torch_files`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import onnx_backend
from ..errors import BackendUnavailableError, ModelFileError
from ..interface import ModelInfo

EXPECTED = ("an azengine / pytorch-alpha-zero AlphaZeroNet model (.pt state_dict, TorchScript archive "
            "or .onnx file)")


@dataclass
class WeightsFile:
    """A model file read from disk: what kind it is and its contents (not yet an evaluator)."""

    path: Path
    kind: str  # "fp32" | "dynamic-int8" | "static-int8" | "onnx-fp32" | "onnx-int8"
    blocks: int
    filters: int
    state_dict: Mapping[str, Any] | None = None  # state_dict files
    module: Any = None  # TorchScript archives
    onnx_bytes: bytes | None = None  # ONNX models
    metadata: dict[str, Any] | None = None

    def info(self, kind: str | None = None) -> ModelInfo:
        """A :class:`ModelInfo` for this file, optionally for an evaluator of another kind."""
        return ModelInfo(str(self.path), kind or self.kind, self.blocks, self.filters, dict(self.metadata or {}))


def check_file(path: Path) -> None:
    """:class:`ModelFileError` unless ``path`` is a non-empty regular file."""
    if not path.exists():
        raise ModelFileError(path, f"no such file; expected {EXPECTED}")
    if not path.is_file():
        raise ModelFileError(path, f"is not a regular file; expected {EXPECTED}")
    if path.stat().st_size == 0:
        raise ModelFileError(path, f"file is empty; expected {EXPECTED}")


def read_onnx_weights(path: Path) -> WeightsFile:
    """An azengine ONNX model file (no torch needed)."""
    check_file(path)
    try:
        data, metadata = onnx_backend.read_onnx(path)
    except BackendUnavailableError:
        raise
    except ValueError as exc:
        raise ModelFileError(path, f"{exc}; expected {EXPECTED}") from None
    return WeightsFile(path, metadata["kind"], int(metadata.get("blocks", 0)), int(metadata.get("filters", 0)),
                       onnx_bytes=data, metadata=metadata)


def read_weights(path: str | Path) -> WeightsFile:
    """Read and recognise a model file; :class:`ModelFileError` says what is wrong with a bad one."""
    path = Path(path)
    check_file(path)
    if onnx_backend.looks_like_onnx(path):
        return read_onnx_weights(path)
    try:
        from . import torch_files  # torch is imported only for the formats that need it
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("torch"):
            raise
        raise ModelFileError(path, "is not an ONNX file, and the torch formats need torch, which this installation "
                                   "lacks; play an ONNX file (Backend onnx-int8 or onnx-fp32)") from None
    return torch_files.read_torch_weights(path)


def sibling_path(path: str | Path, kind: str) -> Path:
    """Where ``azengine quantize`` puts another kind of an fp32 file ``<stem>.pt``.

    ``<stem>_dynamic_quantized.pt`` and ``<stem>_static_quantized.pt`` (pytorch-alpha-zero's names),
    ``<stem>.onnx`` and ``<stem>_static_quantized.onnx``.
    """
    path = Path(path)
    name = {"dynamic-int8": f"{path.stem}_dynamic_quantized{path.suffix or '.pt'}",
            "static-int8": f"{path.stem}_static_quantized{path.suffix or '.pt'}",
            "onnx-fp32": f"{path.stem}.onnx",
            "onnx-int8": f"{path.stem}_static_quantized.onnx"}[kind]
    return path.with_name(name)


