"""Reading model files: fp32 ``state_dict`` s, pytorch-alpha-zero's dynamic-int8 ``state_dict`` s,
TorchScript int8 archives and ONNX models with metadata; and :func:`load_model`, which picks the evaluator.

Plain tensors are read with ``torch.load(..., weights_only=True)``: nothing untrusted is unpickled.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import BACKENDS, default_model_path, onnx_backend, quantization
from .errors import BackendUnavailableError, ModelFileError
from .evaluators import ModelInfo, TorchEvaluator, set_torch_threads
from .interface import Evaluator
from .network import AlphaZeroNet, architecture_of

log = logging.getLogger(__name__)

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
    module: torch.jit.ScriptModule | None = None  # TorchScript archives
    onnx_bytes: bytes | None = None  # ONNX models
    metadata: dict[str, Any] | None = None

    def info(self, kind: str | None = None) -> ModelInfo:
        """A :class:`ModelInfo` for this file, optionally for an evaluator of another kind."""
        return ModelInfo(str(self.path), kind or self.kind, self.blocks, self.filters, dict(self.metadata or {}))


def _sidecar_metadata(path: Path) -> dict[str, Any]:
    """Metadata from ``<file>.json`` beside a state_dict file (the bundled model's model card), if any."""
    card = path.with_name(path.name + ".json")
    if card.is_file():
        try:
            return dict(json.loads(card.read_text()))
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable model card %s: %s", card, exc)
    return {}


def _is_torchscript(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names)


def _read_archive(path: Path) -> WeightsFile:
    extra = {quantization.METADATA_FILE: ""}
    with quantization.quiet():
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    try:
        metadata = json.loads(extra[quantization.METADATA_FILE] or "{}")
    except ValueError as exc:
        raise ModelFileError(path, f"archive metadata is not JSON ({exc})") from exc
    kind = metadata.get("kind")
    if kind not in ("dynamic-int8", "static-int8"):  # fp32 models are state_dicts, never archives
        raise ModelFileError(path, f"TorchScript archive without azengine metadata; expected {EXPECTED}")
    engine = metadata.get("qengine")
    if engine:
        try:
            quantization.set_qengine(engine)
        except ValueError as exc:
            raise ModelFileError(path, str(exc)) from exc
    module.eval()
    with torch.inference_mode():  # one probe: an archive of some other module must not pass as a network
        out = module(torch.zeros(1, 16, 8, 8))
    if not (isinstance(out, tuple) and len(out) == 2 and tuple(out[0].shape) == (1, 4608) and out[1].numel() == 1):
        raise ModelFileError(path, f"TorchScript archive does not map planes (1, 16, 8, 8) to (logits (1, 4608), "
                                   f"value); expected {EXPECTED}")
    return WeightsFile(path, kind, int(metadata.get("blocks", 0)), int(metadata.get("filters", 0)),
                       module=module, metadata=metadata)


def _read_onnx(path: Path) -> WeightsFile:
    try:
        data, metadata = onnx_backend.read_onnx(path)
    except BackendUnavailableError:
        raise
    except ValueError as exc:
        raise ModelFileError(path, f"{exc}; expected {EXPECTED}") from None
    return WeightsFile(path, metadata["kind"], int(metadata.get("blocks", 0)), int(metadata.get("filters", 0)),
                       onnx_bytes=data, metadata=metadata)


def _read_state_dict(path: Path) -> WeightsFile:
    try:
        with quantization.quiet():
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError / UnpicklingError / EOFError for bad files
        raise ModelFileError(path, f"cannot be read as a model file ({_first_line(exc)}); expected {EXPECTED}") from exc
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) for k in obj):
        raise ModelFileError(path, f"holds a {type(obj).__name__}, not a state_dict; expected {EXPECTED}")
    try:
        blocks, filters = architecture_of(obj)
    except KeyError:
        raise ModelFileError(path, f"has no 'convBlock1.conv1.weight' tensor; expected {EXPECTED}") from None
    except ValueError as exc:
        raise ModelFileError(path, f"{exc}; expected {EXPECTED}") from None
    quantized = any("_packed_params" in k for k in obj)
    kind = "dynamic-int8" if quantized else "fp32"
    return WeightsFile(path, kind, blocks, filters, state_dict=obj, metadata=_sidecar_metadata(path))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _summary(exc: BaseException) -> str:
    """The first two lines of ``load_state_dict``'s error (its first line alone names no key)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines[:2])[:300] if lines else type(exc).__name__


# --- lc0 networks (engine/nets/lc0): read into a torch module behind the 16-plane interface --------------
def _looks_like_lc0(path: Path) -> bool:
    from .nets.lc0.weights import looks_like_lc0

    return looks_like_lc0(path)


def _read_lc0(path: Path) -> WeightsFile:
    from .nets.lc0.adapter import load_lc0_as_16_plane

    module, metadata = load_lc0_as_16_plane(path)
    return WeightsFile(path, "fp32", module.blocks, module.filters, module=module, metadata=metadata)


def _load_lc0(weights: WeightsFile, backend: str, threads: int | None) -> Evaluator:
    """An evaluator of an lc0 network: fp32 (torch) or onnx-fp32 (exported now); int8 is not there yet."""
    info = weights.info(backend)
    if backend == "fp32":
        return TorchEvaluator(weights.module, backend, info, threads)
    if backend == "onnx-fp32":
        model = onnx_backend.export_fp32(weights.module)
        info.notes.append("exported to ONNX in memory")
        data = onnx_backend.model_bytes(model, {"kind": backend, "blocks": info.blocks, "filters": info.filters})
        return onnx_backend.OnnxEvaluator(data, backend, info, threads)
    raise ModelFileError(weights.path, f"is an lc0 network; it runs as fp32 or onnx-fp32, not yet as {backend}")
# --- end of lc0 networks ------------------------------------------------------------------------------


def read_weights(path: str | Path) -> WeightsFile:
    """Read and recognise a model file; :class:`ModelFileError` says what is wrong with a bad one."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(path, f"no such file; expected {EXPECTED}")
    if not path.is_file():
        raise ModelFileError(path, f"is not a regular file; expected {EXPECTED}")
    if path.stat().st_size == 0:
        raise ModelFileError(path, f"file is empty; expected {EXPECTED}")
    if _looks_like_lc0(path):
        return _read_lc0(path)
    if onnx_backend.looks_like_onnx(path):
        return _read_onnx(path)
    try:
        archive = zipfile.is_zipfile(path) and _is_torchscript(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(path, f"truncated or damaged archive ({exc}); expected {EXPECTED}") from exc
    if archive:
        try:
            return _read_archive(path)
        except ModelFileError:
            raise
        except Exception as exc:
            raise ModelFileError(path, f"damaged TorchScript archive ({_first_line(exc)})") from exc
    return _read_state_dict(path)


def build_network(weights: WeightsFile) -> AlphaZeroNet:
    """The fp32 :class:`AlphaZeroNet` of an fp32 state_dict file (strict key and shape check)."""
    if weights.state_dict is None or weights.kind != "fp32":
        raise ModelFileError(weights.path, f"is a {weights.kind} file; an fp32 state_dict was expected")
    net = AlphaZeroNet(weights.blocks, weights.filters)
    try:
        net.load_state_dict(weights.state_dict, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(weights.path, f"tensors do not fit a {weights.blocks}x{weights.filters} "
                                           f"AlphaZeroNet ({_summary(exc)})") from None
    return net.eval()


def _dynamic_state_dict_module(weights: WeightsFile) -> nn.Module:
    """pytorch-alpha-zero's dynamic-quantized state_dict loaded into a dynamic-quantized network."""
    reference = AlphaZeroNet(weights.blocks, weights.filters)
    module = quantization.quantize_dynamic_linear(reference)
    try:
        module.load_state_dict(weights.state_dict, strict=True)  # type: ignore[arg-type]
    except (RuntimeError, KeyError) as exc:
        raise ModelFileError(weights.path, f"dynamic-int8 tensors do not fit a {weights.blocks}x"
                                           f"{weights.filters} AlphaZeroNet ({_summary(exc)})") from None
    # load_state_dict does not check the shapes of packed int8 weights: compare them here
    for name in ("valueHead.fc1", "valueHead.fc2", "policyHead.fc1"):
        expected = list(reference.get_submodule(name).weight.shape)
        got = list(module.get_submodule(name).weight().shape)
        if got != expected:
            raise ModelFileError(weights.path, f"dynamic-int8 weight {name} has shape {got}, expected {expected} "
                                               f"for a {weights.blocks}x{weights.filters} AlphaZeroNet")
    return module.eval()


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


def fp32_module(net: AlphaZeroNet) -> nn.Module:
    """The fastest fp32 form measured here: BatchNorm folded into the convolutions, run eagerly.

    (On a 2-core AVX2 machine, 6x64 at batch 64: folded eager 1,344 positions/s with 1 thread and 2,250
    with 2, against 1,266 / 1,910 for a frozen TorchScript trace and 1,012 / 1,681 unfolded.)
    """
    return quantization.fold_batchnorm(net)


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
    set_torch_threads(threads)
    weights = read_weights(path)
    if backend == "auto":
        backend = weights.kind
    if weights.kind != "fp32" and backend != weights.kind:
        raise ModelFileError(weights.path, f"is a {weights.kind} model and cannot run as {backend}; "
                                           f"load its fp32 file for that")
    if weights.metadata and weights.metadata.get("family") == "lc0":
        return _load_lc0(weights, backend, threads)
    if weights.onnx_bytes is not None:
        return onnx_backend.OnnxEvaluator(weights.onnx_bytes, backend, weights.info(), threads)
    if weights.kind != "fp32":
        module = weights.module if weights.module is not None else _dynamic_state_dict_module(weights)
        return TorchEvaluator(module, backend, weights.info(), threads)

    if backend != "fp32":
        sibling = sibling_path(weights.path, backend)
        if sibling.is_file():
            evaluator = load_model(sibling, backend, threads)
            evaluator.info.notes.append(f"using {sibling.name}, the {backend} version of {weights.path.name}")
            return evaluator
    net = build_network(weights)
    info = weights.info(backend)
    if backend == "fp32":
        module = fp32_module(net)
    elif backend in onnx_backend.ONNX_KINDS:
        return _onnx_in_memory(net, backend, info, threads)
    elif backend == "dynamic-int8":
        module = quantization.to_torchscript(quantization.quantize_dynamic_linear(quantization.fold_batchnorm(net)))
        info.notes.append("dynamic-int8 quantized in memory (Linear layers int8, convolutions fp32)")
    else:
        from .calibration import builtin_calibration_planes

        planes = builtin_calibration_planes()
        # weights rounded to nearest: GPTQ would add about 10 s to a 6x64's load and over 2 minutes to a 20x256's
        module = quantization.to_torchscript(quantization.quantize_static(net, [planes], weight_rounding="nearest"))
        info.notes.append(f"static-int8 quantized in memory, calibrated on {len(planes)} built-in positions, "
                          f"weights rounded to nearest; 'azengine quantize' saves a more accurate file (GPTQ)")
    return TorchEvaluator(module, backend, info, threads)


#: The form ``auto`` gives the bundled network: its shipped static-int8 file. On a VNNI CPU it evaluates 3.3x
#: as many positions per second as fp32 (1.8x on AVX2) and beat fp32 at 10+0.1 (docs/QUANTIZATION.md).
BUNDLED_BACKEND = "static-int8"


def load_for_play(path: str | Path, backend: str = "auto", threads: int | None = None) -> Evaluator:
    """:func:`load_model` as the engine plays: ``auto`` on the bundled network means :data:`BUNDLED_BACKEND`.

    Any other file or backend loads as :func:`load_model` says. Where this machine cannot run the bundled
    int8 file (no onednn kernels), the bundled network plays fp32 and a note says why.
    """
    if backend != "auto" or Path(path).resolve() != default_model_path().resolve():
        return load_model(path, backend, threads)
    try:
        return load_model(path, BUNDLED_BACKEND, threads)
    except ModelFileError as exc:
        evaluator = load_model(path, "fp32", threads)
        evaluator.info.notes.append(f"{BUNDLED_BACKEND} cannot run here ({exc}); playing fp32")
        return evaluator


def _onnx_in_memory(net: AlphaZeroNet, backend: str, info: ModelInfo, threads: int | None) -> Evaluator:
    """An ONNX evaluator of an fp32 network, exported (and for int8, quantized) now."""
    model = onnx_backend.export_fp32(fp32_module(net))
    if backend == "onnx-int8":
        from .calibration import builtin_calibration_planes

        planes = builtin_calibration_planes()
        model = onnx_backend.quantize_int8(model, [planes[i:i + 64] for i in range(0, len(planes), 64)])
        info.notes.append(f"onnx-int8 quantized in memory, calibrated on {len(planes)} built-in positions; "
                          f"run 'azengine quantize --format onnx --type static' to save it")
    else:
        info.notes.append("exported to ONNX in memory; run 'azengine quantize --format onnx --type fp32' to save it")
    data = onnx_backend.model_bytes(model, {"kind": backend, "blocks": info.blocks, "filters": info.filters})
    return onnx_backend.OnnxEvaluator(data, backend, info, threads)
