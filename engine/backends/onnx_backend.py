"""ONNX Runtime evaluators: read an azengine ONNX file (fp32 or int8 QDQ) and run it.

Files carry the same metadata as the TorchScript archives, as the model's ``metadata_props`` entry
``azengine``. Nothing here imports torch: an ONNX network plays without it. Export and int8 conversion
live in :mod:`engine.quant.onnx_int8`.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError
from ..interface import DEFAULT_FAMILY, ModelInfo, NetworkEvaluator

ONNX_KINDS = ("onnx-fp32", "onnx-int8")
INPUT_NAME = "planes"
#: The graph outputs of each network family: policy logits, then the value (alphazero) or the WDL
#: probabilities (seresnet).
OUTPUT_NAMES_OF_FAMILY = {"alphazero": ("policy", "value"), "seresnet": ("policy", "wdl"), "lc0": ("policy", "wdl")}
OUTPUT_NAMES = OUTPUT_NAMES_OF_FAMILY[DEFAULT_FAMILY]
METADATA_KEY = "azengine"
INSTALL_HINT = ("the ONNX backends need onnxruntime (a dependency of azengine: pip install onnxruntime); making "
                "ONNX files also needs onnx and onnxscript: pip install 'azengine[onnx]'")
#: ONNX protobuf files start with field 1 (ir_version, varint): this byte.
ONNX_FIRST_BYTE = 0x08


def require(name: str) -> ModuleType:
    """Import an optional ONNX dependency, or raise :class:`BackendUnavailableError` with the install hint."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise BackendUnavailableError(f"{name} is not installed; {INSTALL_HINT}") from None


def available() -> bool:
    """Whether the ONNX backends can run in this installation."""
    try:
        for name in ("onnxruntime", "onnx", "onnxscript"):
            require(name)
    except BackendUnavailableError:
        return False
    return True


def runtime_version() -> str:
    """The installed onnxruntime's version."""
    return str(require("onnxruntime").__version__)


def looks_like_onnx(path: Path) -> bool:
    """Whether a file is (probably) an ONNX model: its suffix or its first byte."""
    if path.suffix.lower() == ".onnx":
        return True
    with path.open("rb") as handle:
        return handle.read(1) == bytes([ONNX_FIRST_BYTE])


def read_onnx(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The bytes and azengine metadata of an ONNX model file, read with ONNX Runtime alone.

    Raises ValueError (with the reason) for a file that is not an azengine ONNX model.
    """
    require("onnxruntime")
    data = path.read_bytes()
    try:
        session = make_session(data, threads=1)
    except Exception as exc:  # onnxruntime's InvalidProtobuf / Fail and friends
        raise ValueError(f"cannot be parsed as ONNX ({_first_line(exc)})") from None
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ValueError("ONNX model without azengine metadata; make one with 'azengine quantize --format onnx'")
    try:
        metadata = json.loads(props[METADATA_KEY])
    except ValueError as exc:
        raise ValueError(f"ONNX metadata is not JSON ({exc})") from None
    family = metadata.get("family", DEFAULT_FAMILY)
    if family not in OUTPUT_NAMES_OF_FAMILY:
        raise ValueError(f"ONNX metadata names network family {family!r}, expected one of "
                         f"{', '.join(OUTPUT_NAMES_OF_FAMILY)}")
    expected = list(OUTPUT_NAMES_OF_FAMILY[family])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [INPUT_NAME] or outputs != expected:
        raise ValueError(f"ONNX model has inputs {inputs} and outputs {outputs}, expected [{INPUT_NAME!r}] "
                         f"and {expected} (a {family} network)")
    if metadata.get("kind") not in ONNX_KINDS:
        raise ValueError(f"ONNX metadata names kind {metadata.get('kind')!r}, expected one of {ONNX_KINDS}")
    return data, metadata


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def make_session(data: bytes, threads: int | None, spinning: bool = False) -> Any:
    """An ONNX Runtime CPU session for model bytes.

    ``threads`` intra-op threads (default 1), sequential execution, full graph optimisation, and by
    default no spinning of idle pool threads: a spinning thread takes the core the search thread needs
    (measured in docs/PERFORMANCE.md).
    """
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads if threads and threads > 0 else 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


class OnnxEvaluator(NetworkEvaluator):
    """Runs an ONNX model through ONNX Runtime (which releases the GIL while it computes)."""

    def __init__(self, data: bytes, kind: str, info: ModelInfo, threads: int | None = None,
                 spinning: bool = False) -> None:
        self.session = make_session(data, threads, spinning)
        self._data = data
        self._spinning = spinning
        self.kind = kind
        self.info = info
        self.threads = threads
        self.has_wdl = info.has_wdl
        self._outputs = OUTPUT_NAMES_OF_FAMILY[info.family]

    def _run(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, second = self.session.run(self._outputs, {INPUT_NAME: np.ascontiguousarray(planes, dtype=np.float32)})
        return logits, second

    def set_threads(self, threads: int) -> None:
        """Use ``threads`` intra-op threads: the session is rebuilt (ONNX Runtime fixes them at creation)."""
        if threads != self.threads:
            self.session = make_session(self._data, threads, self._spinning)
            self.threads = threads

