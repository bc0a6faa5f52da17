"""Model-level int8 transforms: dynamic quantization, static (FX graph mode) quantization, archives.

These work on an :class:`~engine.network.AlphaZeroNet` in memory. The ``azengine quantize`` tool
(package ``quantize``) adds calibration data sources, the accuracy report and the command line.

torch 2.13 marks ``torch.ao.quantization`` and ``torch.jit`` deprecated; their warnings are
silenced here (they would otherwise reach a GUI through stderr on every load).
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .network import INPUT_PLANES, AlphaZeroNet

METADATA_FILE = "azengine.json"
ARCHIVE_FORMAT_VERSION = 1
#: onednn ran this project's int8 convolutions fastest on an AVX2 CPU at batch 32-64 (x86 and fbgemm were
#: 15-25% slower there; x86 is faster at batch 1). See docs/PERFORMANCE.md.
DEFAULT_QENGINE = "onednn"


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


def fold_batchnorm(net: AlphaZeroNet) -> nn.Module:
    """An eval-mode copy of ``net`` with every BatchNorm folded into the convolution before it."""
    from torch.ao.quantization import fuse_modules

    folded = copy.deepcopy(net).eval()
    groups = [["convBlock1.conv1", "convBlock1.bn1"]]
    for i in range(len(folded.residualBlocks)):
        groups += [[f"residualBlocks.{i}.conv1", f"residualBlocks.{i}.bn1"],
                   [f"residualBlocks.{i}.conv2", f"residualBlocks.{i}.bn2"]]
    groups += [["valueHead.conv1", "valueHead.bn1"], ["policyHead.conv1", "policyHead.bn1"]]
    with quiet():
        return fuse_modules(folded, groups, inplace=False)


def quantize_dynamic_linear(net: nn.Module) -> nn.Module:
    """Dynamic int8: per-channel int8 weights for the Linear layers (the heads' fc layers); convolutions
    stay fp32.

    Per-channel, not torch's per-tensor default: one scale for all 4,608 rows of the policy layer let the
    largest rows set the step for every move, and the top move changed in 11.5% of held-out positions
    (v3; per-channel: 4.5%, mean KL 0.0086 -> 0.0014).
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig

    with quiet():
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(net).eval(),
                                                      {nn.Linear: per_channel_dynamic_qconfig})


#: The layer that ``fp32_input_conv`` keeps out of the static int8 graph. Its inputs are exact (0 or 1),
#: but its int8 weights alone gave v1 a value RMSE of 0.023 against fp32; keeping it fp32 cut the whole
#: network's value RMSE from 0.0277 to 0.0187 (v1) and 0.029 to 0.022 (v2), for 10-17% of the speed
#: at batch 32-64 (docs/QUANTIZATION.md). Equal-node matches showed no Elo cost from all-int8, so speed
#: wins by default.
INPUT_CONV = "convBlock1"
#: The policy head's 128 x 4608 Linear gets dynamic int8 (per-channel int8 weights, input scaled per
#: batch, fp32 logits): with a calibrated fixed scale and int8 logits instead, the policy's KL divergence
#: from fp32 nearly doubled (0.0090 vs 0.0048, v1), and per-tensor weights tripled it (v3: 0.0108 vs 0.0037).
DYNAMIC_MODULES = ("policyHead.fc1",)


#: How ``quantize_static`` rounds weights to int8: GPTQ (the default) or to nearest (torch's own).
WEIGHT_ROUNDINGS = ("gptq", "nearest")


def static_qconfig_mapping(qengine: str = DEFAULT_QENGINE, fp32_input_conv: bool = False) -> Any:
    """The ``QConfigMapping`` of :func:`quantize_static`.

    Weights: the engine's default (per-channel symmetric int8 on x86, fbgemm and onednn). Activations:
    uint8 with min/max observers; the default histogram observers clip the rare large activations the
    value head depends on (maximum value error 0.30 vs 0.17 with min/max, v1 network). fbgemm and x86 keep
    their 7-bit activation range (``reduce_range``), which guards their kernels against overflow on CPUs
    without VNNI; on onednn the full range measured more accurate.
    """
    from torch.ao.quantization import (
        MinMaxObserver,
        QConfig,
        get_default_qconfig_mapping,
        per_channel_dynamic_qconfig,
    )

    mapping = get_default_qconfig_mapping(qengine)
    activation = MinMaxObserver.with_args(dtype=torch.quint8, reduce_range=qengine in ("x86", "fbgemm"))
    mapping.set_global(QConfig(activation=activation, weight=mapping.global_qconfig.weight))
    if fp32_input_conv:
        mapping.set_module_name(INPUT_CONV, None)
    for name in DYNAMIC_MODULES:
        mapping.set_module_name(name, per_channel_dynamic_qconfig)
    return mapping


def quantize_static(
    net: AlphaZeroNet,
    calibration_batches: Iterable[np.ndarray],
    qengine: str = DEFAULT_QENGINE,
    progress: Callable[[int], None] | None = None,
    fp32_input_conv: bool = False,
    bias_correction: bool = True,
    layer_progress: Callable[[int, int], None] | None = None,
    on_correction: Callable[[BiasCorrection], None] | None = None,
    equalize: bool = True,
    weight_rounding: str = "gptq",
    rounding_progress: Callable[[int, int], None] | None = None,
) -> nn.Module:
    """Static int8 via FX graph mode (see :func:`static_qconfig_mapping` for the exact layers).

    Every convolution (conv+bn+relu fused, per-channel weights), the skip additions and the value head's
    Linear layers run in int8; the policy Linear is dynamic int8; ``fp32_input_conv`` keeps the input
    convolution fp32. ``calibration_batches`` yields float32 planes ``(B, 16, 8, 8)`` encoded exactly as at
    inference. Then, in order:

    - with ``equalize``, the residual stream's channels are rescaled on those positions so that each uses
      its tensor's whole int8 range (:func:`engine.equalization.equalize_stream`; exact in fp32);
    - observers record the activation ranges (``progress`` is called with each batch's size);
    - with ``weight_rounding="gptq"`` the int8 weights are rounded by GPTQ on the first ``GPTQ_POSITIONS``
      calibration positions (:func:`engine.weight_rounding.round_weights_gptq`) instead of to nearest (``"nearest"``);
    - with ``bias_correction`` the int8 layers' biases are corrected on the same positions
      (:func:`correct_bias`; ``on_correction`` gets its :class:`BiasCorrection`).

    ``rounding_progress(done, total)`` and ``layer_progress(done, total)`` are called after each layer of
    the last two steps.
    """
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from .equalization import equalize_stream
    from .weight_rounding import round_weights_gptq

    if weight_rounding not in WEIGHT_ROUNDINGS:
        raise ValueError(f"weight rounding {weight_rounding!r}: expected one of {', '.join(WEIGHT_ROUNDINGS)}")
    set_qengine(qengine)
    batches = [np.ascontiguousarray(batch, dtype=np.float32) for batch in calibration_batches]
    if not any(len(batch) for batch in batches):
        raise ValueError("static quantization needs at least one calibration position")
    if equalize:
        net = equalize_stream(net, batches)
    example = (torch.zeros(1, INPUT_PLANES, 8, 8),)
    with quiet():
        prepared = prepare_fx(copy.deepcopy(net).eval(), static_qconfig_mapping(qengine, fp32_input_conv), example)
        with torch.inference_mode():
            for planes in batches:
                prepared(torch.from_numpy(planes))
                if progress is not None:
                    progress(len(planes))
        # the fp32 model GPTQ and the bias correction compare with (convert_fx consumes ``prepared``)
        reference = copy.deepcopy(prepared) if weight_rounding == "gptq" or bias_correction else None
        quantized = convert_fx(prepared)
        if reference is not None and weight_rounding == "gptq":
            round_weights_gptq(reference, quantized, first_positions(batches, GPTQ_POSITIONS), rounding_progress)
        if reference is not None and bias_correction:
            correction = correct_bias(reference, quantized, first_positions(batches, BIAS_CORRECTION_POSITIONS),
                                      layer_progress)
            if on_correction is not None:
                on_correction(correction)
        return quantized


#: Calibration positions (the first ones) on which :func:`correct_bias` (and its ONNX counterpart)
#: measures each layer's mean error.
BIAS_CORRECTION_POSITIONS = 1024
#: Calibration positions (the first ones) on whose int8 activations GPTQ rounds the weights. v5, 1,200
#: held-out positions: value RMSE 0.0205 / 0.0201 / 0.0194 / 0.0190 with 128 / 256 / 512 / 1,024, and
#: the quantization took 14 / 9 / 12 / 21 s (6x64, 2 threads): the Gram matrices dominate.
GPTQ_POSITIONS = 512


def first_positions(batches: list[np.ndarray], count: int) -> list[np.ndarray]:
    """The first ``count`` positions of ``batches``, as one batch."""
    return [np.concatenate(batches)[:count]]


class FirstPositions:
    """Keeps the first ``limit`` positions of a stream of plane batches (for the bias correction)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.batches: list[np.ndarray] = []
        self.count = 0

    def add(self, planes: np.ndarray) -> None:
        """Keep as much of ``planes`` as the limit allows."""
        if self.count < self.limit:
            self.batches.append(planes[:self.limit - self.count])
            self.count += len(self.batches[-1])


def _channel_sums(output: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Per channel (dimension 1), the float64 sum of a layer's output (dequantized) and how many values
    each sum has."""
    values = output.dequantize() if output.is_quantized else output
    dims = [d for d in range(values.dim()) if d != 1]
    return values.sum(dim=dims, dtype=torch.float64), values.numel() // values.shape[1]


@dataclass(frozen=True)
class BiasCorrection:
    """What a bias correction did, measured against fp32 on the positions it was computed on."""

    layers: int
    value_rmse: tuple[float, float]  #: before, after
    logits_rmse: tuple[float, float]  #: before, after

    @property
    def kept(self) -> bool:
        """Whether the corrected biases were kept: neither the value nor the logits got further from fp32."""
        return self.value_rmse[1] <= self.value_rmse[0] and self.logits_rmse[1] <= self.logits_rmse[0]


def output_errors(reference: tuple[np.ndarray, np.ndarray], outputs: tuple[np.ndarray, np.ndarray]
                  ) -> tuple[float, float]:
    """RMS differences (value, logits) of a network's ``(logits, values)`` outputs from the reference's."""
    (ref_logits, ref_values), (logits, values) = reference, outputs
    return (float(np.sqrt(np.mean((np.asarray(values, np.float64) - ref_values) ** 2))),
            float(np.sqrt(np.mean((np.asarray(logits, np.float64) - ref_logits) ** 2))))


def int8_layers(quantized: nn.Module) -> list[str]:
    """Names of the converted FX model's layers with int8 weights (convolutions and Linear), graph order."""
    return [node.target for node in quantized.graph.nodes
            if node.op == "call_module" and hasattr(quantized.get_submodule(node.target), "set_weight_bias")]


def correct_bias(reference: nn.Module, quantized: nn.Module, batches: list[np.ndarray],
                 layer_progress: Callable[[int, int], None] | None = None) -> BiasCorrection:
    """Empirical bias correction: shift each int8 layer's bias so that its mean output per channel over
    ``batches`` equals the fp32 network's; undone if it moved the outputs further from fp32.

    Rounding weights and activations to int8 moves each layer's outputs on average, and the shifts add up
    along the network (v3: the value came out 0.016 low on average). The layers are corrected in graph
    order during one forward pass of all the positions: each layer's output is measured, its bias fixed and
    the output recomputed before the next layer sees it, so a correction also absorbs what the earlier
    layers left. Where int8 is far too coarse for a layer (seen in random test networks, whose int8
    layers were off by half their mean), matching the mean can make each output worse; so the network's
    outputs are compared with fp32's on the same positions before and after, and the old biases are put
    back unless neither the value nor the logits got worse. ``reference`` is the prepared (observed, fused,
    fp32) model, whose modules carry the same names as ``quantized``'s.
    """
    names = int8_layers(quantized)
    original = {name: (quantized.get_submodule(name).weight(), quantized.get_submodule(name).bias())
                for name in names}
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = dict.fromkeys(names, 0)

    def measure(name: str) -> Callable[..., None]:
        def record(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            total, count = _channel_sums(output)
            sums[name] = sums[name] + total if name in sums else total
            counts[name] += count
        return record

    def correct(index: int, name: str) -> Callable[..., torch.Tensor]:
        def replace(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            handles.pop(name).remove()  # once: the recomputation below must not come back here
            total, count = _channel_sums(output)
            error = (total / count - sums[name] / counts[name]).float()
            bias = module.bias()
            module.set_weight_bias(module.weight(), (bias if bias is not None else torch.zeros_like(error)) - error)
            if layer_progress is not None:
                layer_progress(index + 1, len(names))
            return module(*inputs)
        return replace

    planes = torch.from_numpy(np.concatenate(batches))
    with torch.inference_mode():
        handles = {name: reference.get_submodule(name).register_forward_hook(measure(name)) for name in names}
        try:
            fp32 = tuple(np.concatenate(part) for part in zip(*(
                [t.numpy() for t in reference(torch.from_numpy(b))] for b in batches), strict=True))
        finally:
            for handle in handles.values():
                handle.remove()
        before = output_errors(fp32, tuple(t.numpy() for t in quantized(planes)))
        handles = {name: quantized.get_submodule(name).register_forward_hook(correct(index, name))
                   for index, name in enumerate(names)}
        try:
            after = output_errors(fp32, tuple(t.numpy() for t in quantized(planes)))
        finally:
            for handle in handles.values():
                handle.remove()
    result = BiasCorrection(len(names), (before[0], after[0]), (before[1], after[1]))
    if not result.kept:
        for name, (weight, bias) in original.items():
            quantized.get_submodule(name).set_weight_bias(weight, bias)
    return result


def to_torchscript(module: nn.Module) -> torch.jit.ScriptModule:
    """Trace ``module`` (planes -> (logits, values)) into a traced (not frozen) TorchScript module."""
    example = torch.zeros(2, INPUT_PLANES, 8, 8)
    with quiet(), torch.inference_mode():
        traced = torch.jit.trace(module.eval(), example, check_trace=False)
    return traced


def archive_bytes(module: nn.Module, metadata: dict[str, Any]) -> bytes:
    """Serialise ``module`` as a TorchScript archive with ``metadata`` as its extra JSON file."""
    scripted = to_torchscript(module)
    meta = {"format_version": ARCHIVE_FORMAT_VERSION, "torch_version": torch.__version__, **metadata}
    buffer = io.BytesIO()
    with quiet():
        torch.jit.save(scripted, buffer, _extra_files={METADATA_FILE: json.dumps(meta, sort_keys=True)})
    return buffer.getvalue()
