"""Torch int8 transforms of a network: BatchNorm folding, dynamic and static (FX graph mode)
quantization, and TorchScript archives with metadata."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.ao.quantization import (
    MinMaxObserver,
    QConfig,
    fuse_modules,
    get_default_qconfig_mapping,
    per_channel_dynamic_qconfig,
)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

from ..backends.torch_backend import METADATA_FILE, quiet, set_qengine
from ..nets.alphazero import INPUT_PLANES, AlphaZeroNet
from ..nets.lc0.adapter import FAMILY as LC0_FAMILY
from ..nets.lc0.adapter import Lc0Evaluation
from ..nets.seresnet import SEResNet, with_frozen_caps
from .bias_correction import BIAS_CORRECTION_POSITIONS, BiasCorrection, correct_bias, first_positions
from .equalization import equalizable, equalize_stream
from .gptq import round_weights_gptq

#: The quantized kernel library static int8 uses by default (fastest for these convolutions at the
#: search's batch sizes; docs/PERFORMANCE.md).
DEFAULT_QENGINE = "onednn"

ARCHIVE_FORMAT_VERSION = 1


Network = AlphaZeroNet | SEResNet | Lc0Evaluation


def batchnorm_pairs(net: nn.Module) -> list[list[str]]:
    """``[conv, bn]`` module names of every BatchNorm and the convolution it follows.

    Both families name them alike: in each module, ``bnK`` normalises the output of ``convK``.
    """
    modules = dict(net.named_modules())
    pairs = []
    for name, module in modules.items():
        head, _, leaf = name.rpartition(".")
        if isinstance(module, nn.Conv2d) and leaf.startswith("conv"):
            bn = f"{head}.bn{leaf[4:]}" if head else f"bn{leaf[4:]}"
            if isinstance(modules.get(bn), nn.BatchNorm2d):
                pairs.append([name, bn])
    return pairs


def fold_batchnorm(net: Network) -> nn.Module:
    """An eval-mode copy of ``net`` with every BatchNorm folded into the convolution before it (an lc0
    network has none left: its file's reader folded them)."""
    folded = copy.deepcopy(net).eval()
    pairs = batchnorm_pairs(folded)
    if not pairs:
        return folded
    with quiet():
        return fuse_modules(folded, pairs, inplace=False)


def quantize_dynamic_linear(net: nn.Module) -> nn.Module:
    """Dynamic int8: per-channel int8 weights for the Linear layers (the heads' fc layers); convolutions
    stay fp32.

    Per-channel, not torch's per-tensor default: one scale for all 4,608 rows of the policy layer lets the
    largest rows set the step for every move.
    """
    with quiet():
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(net).eval(),
                                                      {nn.Linear: per_channel_dynamic_qconfig})


#: The layer that ``fp32_input_conv`` keeps out of the static int8 graph. Its inputs are exact (0 or 1);
#: keeping it fp32 makes the value more accurate for a little speed. All-int8 is the default: equal-node
#: matches showed no Elo cost from it (docs/notes/).
INPUT_CONV = "convBlock1"
#: The policy head's 128 x 4608 Linear gets dynamic int8 (per-channel int8 weights, input scaled per
#: batch, fp32 logits): a calibrated fixed scale with int8 logits, or per-tensor weights, moved the policy
#: much further from fp32.
DYNAMIC_MODULES = ("policyHead.fc1",)
#: The same for the ``seresnet`` family: its input block; no dynamic modules; kept fp32: the policy's last
#: 1x1 convolution and the flatten after it (fp32 logits, as above: int8 logits reorder near-equal moves;
#: a flatten left to the global qconfig quantizes the fp32 logits again), the WDL logits' Linear and the
#: softmax (the W/D/L probabilities in fp32).
SERESNET_INPUT = "input"
SERESNET_FP32_MODULES = ("policy.conv2", "policy.flatten", "value.fc2", "softmax")
#: The ``lc0`` family (:class:`engine.nets.lc0.adapter.Lc0Evaluation`): only the wrapped network ``net`` is
#: quantized (the WDL softmax after it stays fp32); inside it, its input convolution (with
#: ``fp32_input_conv``), as for ``seresnet`` the convolution that makes the policy logits and the WDL
#: logits' Linear (with the flatten after the policy convolution), and every block's squeeze-excitation
#: stay fp32.
#: The SE's int8 multiply and add (``sigmoid(g) * y + b``: two more roundings of the residual stream per
#: block) moved Maia's value twice as far from fp32 as everything else together (docs/LC0.md).
LC0_NET = "net"
LC0_INPUT = "net.input"
LC0_FP32_MODULES = ("net.policy", "net.policy_flatten", "net.value_fc2")


def fp32_modules_of(net: nn.Module) -> tuple[str, ...]:
    """The modules static int8 keeps fp32 in ``net``: its family's (:data:`SERESNET_FP32_MODULES`,
    :data:`LC0_FP32_MODULES`; none for ``alphazero``) and every block's squeeze-excitation.

    The SE's int8 multiply and add round the residual stream twice more per block; kept int8 they moved
    the value of Maia (lc0) and of our own SE networks several times further from fp32 than all the other
    int8 layers together (docs/QUANTIZATION.md, docs/LC0.md)."""
    if net.family == LC0_FAMILY:
        tower = net.get_submodule(f"{LC0_NET}.tower")
        return (*LC0_FP32_MODULES,
                *(f"{LC0_NET}.tower.{i}.se" for i, block in enumerate(tower) if block.se is not None))
    if net.family == SEResNet.family:
        return (*SERESNET_FP32_MODULES,
                *(f"blocks.{i}.se" for i, block in enumerate(net.blocks) if block.se is not None))
    return ()


#: How ``quantize_static`` rounds weights to int8: GPTQ (the default) or to nearest (torch's own).
WEIGHT_ROUNDINGS = ("gptq", "nearest")


def static_qconfig_mapping(qengine: str = DEFAULT_QENGINE, fp32_input_conv: bool = False,
                           family: str = "alphazero", fp32_modules: tuple[str, ...] | None = None) -> Any:
    """The ``QConfigMapping`` of :func:`quantize_static`.

    Weights: the engine's default (per-channel symmetric int8 on x86, fbgemm and onednn). Activations:
    uint8 with min/max observers; the default histogram observers clip the rare large activations the
    value head depends on. fbgemm and x86 keep
    their 7-bit activation range (``reduce_range``), which guards their kernels against overflow on CPUs
    without VNNI; on onednn the full range measured more accurate. ``fp32_modules``: the modules of a
    ``seresnet`` or ``lc0`` network kept fp32 (:func:`fp32_modules_of`; ``None``: the family's own, without
    the squeeze-excitations).
    """
    mapping = get_default_qconfig_mapping(qengine)
    activation = MinMaxObserver.with_args(dtype=torch.quint8, reduce_range=qengine in ("x86", "fbgemm"))
    qconfig = QConfig(activation=activation, weight=mapping.global_qconfig.weight)
    mapping.set_global(qconfig)
    if family == LC0_FAMILY:
        mapping.set_global(None)
        mapping.set_module_name(LC0_NET, qconfig)
        for name in (*(LC0_FP32_MODULES if fp32_modules is None else fp32_modules),
                     *((LC0_INPUT,) if fp32_input_conv else ())):
            mapping.set_module_name(name, None)
        return mapping
    if family == SEResNet.family:
        if fp32_input_conv:
            mapping.set_module_name(SERESNET_INPUT, None)
        for name in SERESNET_FP32_MODULES if fp32_modules is None else fp32_modules:
            mapping.set_module_name(name, None)
        return mapping
    if fp32_input_conv:
        mapping.set_module_name(INPUT_CONV, None)
    for name in DYNAMIC_MODULES:
        mapping.set_module_name(name, per_channel_dynamic_qconfig)
    return mapping


def quantize_static(
    net: Network,
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
    convolution fp32. ``calibration_batches`` yields float32 planes ``(B, 16, 8, 8)`` (an lc0 network's
    ``(B, 112, 8, 8)``) encoded exactly as at inference. Then, in order:

    - with ``equalize`` (where :func:`engine.quant.equalization.equalizable`: not for a capped network), the
      residual stream's channels are rescaled on those positions so that each uses its tensor's whole int8
      range (:func:`engine.quant.equalization.equalize_stream`; exact in fp32);
    - observers record the activation ranges (``progress`` is called with each batch's size);
    - with ``weight_rounding="gptq"`` the int8 weights are rounded by GPTQ on the first ``GPTQ_POSITIONS``
      calibration positions (:func:`engine.quant.gptq.round_weights_gptq`) instead of to nearest (``"nearest"``);
    - with ``bias_correction`` the int8 layers' biases are corrected on the same positions
      (:func:`correct_bias`; ``on_correction`` gets its :class:`BiasCorrection`).

    ``rounding_progress(done, total)`` and ``layer_progress(done, total)`` are called after each layer of
    the last two steps.
    """
    if weight_rounding not in WEIGHT_ROUNDINGS:
        raise ValueError(f"weight rounding {weight_rounding!r}: expected one of {', '.join(WEIGHT_ROUNDINGS)}")
    set_qengine(qengine)
    batches = [np.ascontiguousarray(batch, dtype=np.float32) for batch in calibration_batches]
    if not any(len(batch) for batch in batches):
        raise ValueError("static quantization needs at least one calibration position")
    if equalize and equalizable(net):
        net = equalize_stream(net, batches)
    net = with_frozen_caps(net)
    example = (torch.zeros(1, getattr(net, "input_planes", INPUT_PLANES), 8, 8),)
    with quiet():
        mapping = static_qconfig_mapping(qengine, fp32_input_conv, net.family, fp32_modules_of(net))
        prepared = prepare_fx(copy.deepcopy(net).eval(), mapping, example)
        with torch.inference_mode():
            for planes in batches:
                prepared(torch.from_numpy(planes))
                if progress is not None:
                    progress(len(planes))
        _clamp_observed_ranges(prepared)
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


def _clamp_observed_ranges(prepared: torch.fx.GraphModule) -> None:
    """Narrow the range each observer recorded for a tensor that a ``torch.clamp`` with constant bounds
    then clamps (a capped network's caps; the clamp shares the observer of its input)."""
    for node in prepared.graph.nodes:
        if node.op != "call_function" or node.target is not torch.clamp:
            continue
        source = node.args[0]
        bounds = [*node.args[1:], node.kwargs.get("min"), node.kwargs.get("max")][:2]
        if (source.op == "call_module" and "activation_post_process" in str(source.target)
                and all(isinstance(b, float) for b in bounds)):
            observer = prepared.get_submodule(str(source.target))
            observer.min_val.clamp_(min=bounds[0], max=bounds[1])
            observer.max_val.clamp_(min=bounds[0], max=bounds[1])


#: Calibration positions (the first ones) on whose int8 activations GPTQ rounds the weights: more cost
#: time (the Gram matrices dominate) for little more accuracy.
GPTQ_POSITIONS = 512


def to_torchscript(module: nn.Module, input_planes: int | None = None) -> torch.jit.ScriptModule:
    """Trace ``module`` (planes ``(B, input_planes, 8, 8)`` -> (logits, values)) into a traced (not frozen)
    TorchScript module; ``input_planes`` defaults to the module's attribute of that name, else 16."""
    planes = input_planes if input_planes is not None else getattr(module, "input_planes", INPUT_PLANES)
    example = torch.zeros(2, planes, 8, 8)
    with quiet(), torch.inference_mode():
        traced = torch.jit.trace(module.eval(), example, check_trace=False)
    return traced


def archive_bytes(module: nn.Module, metadata: dict[str, Any]) -> bytes:
    """Serialise ``module`` as a TorchScript archive with ``metadata`` as its extra JSON file (planes per
    position: the metadata's ``input_planes``, else 16)."""
    scripted = to_torchscript(module, int(metadata.get("input_planes", INPUT_PLANES)))
    meta = {"format_version": ARCHIVE_FORMAT_VERSION, "torch_version": torch.__version__, **metadata}
    buffer = io.BytesIO()
    with quiet():
        torch.jit.save(scripted, buffer, _extra_files={METADATA_FILE: json.dumps(meta, sort_keys=True)})
    return buffer.getvalue()
