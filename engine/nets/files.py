"""Model files on disk and what they are: :func:`read_weights` recognises a file without running it.

Kinds: fp32 ``state_dict`` s (pytorch-alpha-zero's format), pytorch-alpha-zero's dynamic-int8
``state_dict`` s, azengine's TorchScript int8 archives, and ONNX models with azengine metadata. An ONNX
file is read without importing torch; the torch formats are read by :mod:`engine.nets.torch_files`.
"""

from __future__ import annotations

from pathlib import Path

from ..backends import onnx_backend
from ..errors import BackendUnavailableError, ModelFileError
from .lc0.weights import looks_like_lc0
from .weights_file import EXPECTED, WeightsFile, check_file, family_of_metadata

#: How lc0's network files are named; their int8 siblings are ``.pt`` / ``.onnx`` files.
LC0_SUFFIX = ".pb.gz"


def read_onnx_weights(path: Path) -> WeightsFile:
    """An azengine ONNX model file (no torch needed)."""
    check_file(path)
    try:
        data, metadata = onnx_backend.read_onnx(path)
    except BackendUnavailableError:
        raise
    except ValueError as exc:
        raise ModelFileError(path, f"{exc}; expected {EXPECTED}") from None
    family = family_of_metadata(path, metadata)
    return WeightsFile(path, metadata["kind"], int(metadata.get("blocks", 0)), int(metadata.get("filters", 0)),
                       onnx_bytes=data, metadata=metadata, family=family)


def read_weights(path: str | Path) -> WeightsFile:
    """Read and recognise a model file; :class:`ModelFileError` says what is wrong with a bad one."""
    path = Path(path)
    check_file(path)
    if onnx_backend.looks_like_onnx(path):
        return read_onnx_weights(path)
    lc0 = looks_like_lc0(path)
    try:  # torch is imported only for the formats that need it
        if lc0:
            from .lc0.adapter import load_lc0_evaluation
        else:
            from . import torch_files
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("torch"):
            raise
        raise ModelFileError(path, "is not an ONNX file, and the torch formats need torch, which this installation "
                                   "lacks; play an ONNX file (Backend onnx-int8 or onnx-fp32)") from None
    if lc0:
        module, metadata = load_lc0_evaluation(path)
        return WeightsFile(path, "fp32", module.blocks, module.filters, module=module, metadata=metadata,
                           family=metadata["family"])
    return torch_files.read_torch_weights(path)


def sibling_path(path: str | Path, kind: str) -> Path:
    """Where ``azengine quantize`` puts another kind of an fp32 file ``<stem>.pt`` (or lc0's ``<stem>.pb.gz``).

    ``<stem>_dynamic_quantized.pt`` and ``<stem>_static_quantized.pt`` (pytorch-alpha-zero's names),
    ``<stem>.onnx`` and ``<stem>_static_quantized.onnx``.
    """
    path = Path(path)
    stem, suffix = path.stem, path.suffix or ".pt"
    if path.name.lower().endswith(LC0_SUFFIX):
        stem, suffix = path.name[:-len(LC0_SUFFIX)], ".pt"
    name = {"dynamic-int8": f"{stem}_dynamic_quantized{suffix}",
            "static-int8": f"{stem}_static_quantized{suffix}",
            "onnx-fp32": f"{stem}.onnx",
            "onnx-int8": f"{stem}_static_quantized.onnx"}[kind]
    return path.with_name(name)
