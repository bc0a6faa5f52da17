"""What a model file is, once read: :class:`WeightsFile` (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelFileError
from ..interface import AZ_INPUT, DEFAULT_FAMILY, FAMILIES, LC0_INPUT, PLANES_OF_INPUT, ModelInfo

#: Families a model file's metadata may name: those trained here and lc0 networks (int8 files made from
#: lc0's ``.pb.gz`` files).
FILE_FAMILIES = (*FAMILIES, "lc0")

EXPECTED = ("an azengine model (pytorch-alpha-zero AlphaZeroNet or azengine seresnet: .pt state_dict, "
            "TorchScript archive or .onnx file)")


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
    family: str = DEFAULT_FAMILY  # a key of engine.interface.FAMILIES

    def info(self, kind: str | None = None) -> ModelInfo:
        """A :class:`ModelInfo` for this file, optionally for an evaluator of another kind."""
        return ModelInfo(str(self.path), kind or self.kind, self.blocks, self.filters, dict(self.metadata or {}),
                         family=self.family)


def family_of_metadata(path: Path, metadata: dict[str, Any]) -> str:
    """The family a file's metadata names (``alphazero`` when it names none); :class:`ModelFileError` for
    one that is not known, or an lc0 network whose file does not take lc0's 112 planes (its metadata's
    ``input_planes``; 16 in the files of older azengine versions, which wrapped lc0 networks in its own
    16 planes without history)."""
    family = metadata.get("family", DEFAULT_FAMILY)
    if family not in FILE_FAMILIES:
        raise ModelFileError(path, f"metadata names network family {family!r}, expected one of "
                                   f"{', '.join(FILE_FAMILIES)}")
    planes = metadata.get("input_planes")
    if family == "lc0" and planes != PLANES_OF_INPUT[LC0_INPUT]:
        if planes == PLANES_OF_INPUT[AZ_INPUT]:
            raise ModelFileError(path, f"an lc0 network file made by an older azengine ({planes}-plane input, "
                                       f"no history); re-quantize the .pb.gz network with 'azengine quantize'")
        raise ModelFileError(path, f"an lc0 network whose file takes {planes} input planes; expected "
                                   f"{PLANES_OF_INPUT[LC0_INPUT]} (lc0's planes with history)")
    return str(family)


def check_file(path: Path) -> None:
    """:class:`ModelFileError` unless ``path`` is a non-empty regular file."""
    if not path.exists():
        raise ModelFileError(path, f"no such file; expected {EXPECTED}")
    if not path.is_file():
        raise ModelFileError(path, f"is not a regular file; expected {EXPECTED}")
    if path.stat().st_size == 0:
        raise ModelFileError(path, f"file is empty; expected {EXPECTED}")
