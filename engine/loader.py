"""Loading a network to play: :func:`load_model` picks the evaluator for a model file and a backend.

An ONNX file (or the ONNX sibling of an fp32 file) loads without importing torch, so that a GUI gets
``readyok`` fast; the torch formats and in-memory conversions import torch when they are asked for.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .backends import onnx_backend
from .bundled import default_model_path
from .cpu import cpu_kind
from .errors import BackendUnavailableError, ModelFileError
from .interface import BACKENDS, Evaluator
from .nets.files import read_onnx_weights, read_weights, sibling_path
from .nets.weights_file import WeightsFile


def load_model(path: str | Path, backend: str = "auto", threads: int | None = None) -> Evaluator:
    """Load a model file and return an evaluator of the requested ``backend``.

    ``backend``: ``auto`` (what the file is), ``fp32``, ``dynamic-int8``, ``static-int8``, ``onnx-fp32``
    or ``onnx-int8``. Another backend asked of an fp32 file uses its sibling file (:func:`sibling_path`)
    when it exists, else converts in memory (static int8: calibrated on the built-in positions) and says
    so in ``info.notes``. Raises :class:`ModelFileError` for a bad file or an impossible request (fp32
    of an int8-only file), :class:`BackendUnavailableError` for an ONNX backend without onnxruntime.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend not in ("auto", *onnx_backend.ONNX_KINDS) and importlib.util.find_spec("torch") is None:
        raise BackendUnavailableError(f"Backend {backend} needs torch, which this installation lacks (the "
                                      f"PyInstaller GUI engine has none); choose onnx-int8 or onnx-fp32")
    path = Path(path)
    if backend in onnx_backend.ONNX_KINDS and not (path.is_file() and onnx_backend.looks_like_onnx(path)):
        sibling = sibling_path(path, backend)
        if sibling.is_file():
            evaluator = _from_weights(read_onnx_weights(sibling), backend, threads)
            evaluator.info.notes.append(f"using {sibling.name}, the {backend} version of {path.name}")
            return evaluator
    return _from_weights(read_weights(path), backend, threads)


def _from_weights(weights: WeightsFile, backend: str, threads: int | None) -> Evaluator:
    """The evaluator of a file that has been read (siblings and in-memory conversions for fp32 files)."""
    if backend == "auto":
        backend = weights.kind
    if weights.kind != "fp32" and backend != weights.kind:
        raise ModelFileError(weights.path, f"is a {weights.kind} model and cannot run as {backend}; "
                                           f"load its fp32 file for that")
    if weights.onnx_bytes is not None:
        return onnx_backend.OnnxEvaluator(weights.onnx_bytes, backend, weights.info(), threads)
    try:
        from . import torch_conversions  # the torch formats: torch is needed from here on
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("torch"):
            raise
        raise ModelFileError(weights.path, f"runs as {backend} only with torch, which this installation lacks; "
                                           f"choose Backend onnx-int8 or onnx-fp32") from None

    if weights.kind != "fp32":
        return torch_conversions.int8_evaluator(weights, threads)
    if backend not in ("fp32", *onnx_backend.ONNX_KINDS):
        sibling = sibling_path(weights.path, backend)
        if sibling.is_file():
            evaluator = load_model(sibling, backend, threads)
            evaluator.info.notes.append(f"using {sibling.name}, the {backend} version of {weights.path.name}")
            return evaluator
    return torch_conversions.converted_evaluator(weights, backend, threads)


#: The form ``auto`` gives the bundled network per CPU kind (:func:`engine.cpu.cpu_kind`): the most nodes/s
#: with the search running (docs/PERFORMANCE.md). ``onnx-int8`` plays without torch (fast start-up);
#: where torch is not installed it is the form on every CPU.
BUNDLED_BACKEND_BY_CPU = {"amx": "static-int8", "avx512-vnni": "onnx-int8", "avx2": "onnx-int8",
                          "baseline": "onnx-int8", "unknown": "onnx-int8"}
#: The form where the CPU's choice needs torch and torch is not installed.
TORCH_FREE_BACKEND = "onnx-int8"


def bundled_backend(flags: frozenset[str] | None = None) -> str:
    """What ``Backend=auto`` gives the bundled network on this CPU (or one with ``flags``) and installation."""
    backend = BUNDLED_BACKEND_BY_CPU[cpu_kind(flags)]
    if backend not in onnx_backend.ONNX_KINDS and importlib.util.find_spec("torch") is None:
        return TORCH_FREE_BACKEND
    return backend


def fast_start_backends(path: str | Path, backend: str = "auto") -> tuple[str, str] | None:
    """For ``Backend=auto`` on the bundled network where its form on this CPU needs torch (:func:`bundled_backend`):
    (:data:`TORCH_FREE_BACKEND`, that form); else None.

    The engine then plays the torch-free form at once, without waiting for torch to be imported, loads the
    other in the background and switches to it between two searches (``uci.upgrade``).
    """
    if backend != "auto" or Path(path).resolve() != default_model_path().resolve():
        return None
    final = bundled_backend()
    if final in onnx_backend.ONNX_KINDS or not sibling_path(path, TORCH_FREE_BACKEND).is_file() \
            or importlib.util.find_spec("onnxruntime") is None:
        return None
    return TORCH_FREE_BACKEND, final


def load_for_play(path: str | Path, backend: str = "auto", threads: int | None = None) -> Evaluator:
    """:func:`load_model` as the engine plays: ``auto`` on the bundled network means :func:`bundled_backend`.

    Any other file or backend loads as :func:`load_model` says. Where this machine cannot run the bundled
    int8 file, the bundled network plays fp32 and a note says why.
    """
    if backend != "auto" or Path(path).resolve() != default_model_path().resolve():
        return load_model(path, backend, threads)
    backend = bundled_backend()
    try:
        return load_model(path, backend, threads)
    except ModelFileError as exc:
        evaluator = load_model(path, "fp32", threads)
        evaluator.info.notes.append(f"{backend} cannot run here ({exc}); playing fp32")
        return evaluator
