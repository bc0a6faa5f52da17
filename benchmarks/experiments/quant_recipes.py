"""Accuracy of int8 recipes against fp32 on the held-out positions, one change at a time (no timing).

Shows where the top-1 disagreements come from: which layers are quantized, and how, and how close the
fp32 network's two best moves were in the positions whose best move changed.

    python -m benchmarks.experiments.quant_recipes [--model engine/models/azengine_default.pt] [--calibration 1024]
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.ao.quantization import (
    HistogramObserver,
    MovingAverageMinMaxObserver,
    QConfig,
    default_dynamic_qconfig,
)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

import engine
from engine.backends.torch_backend import TorchEvaluator
from engine.encoding import encode_batch
from engine.interface import ModelInfo
from engine.nets.alphazero import INPUT_PLANES
from engine.nets.files import read_weights
from engine.nets.torch_files import build_network
from engine.priors import legal_move_indices, masked_softmax
from engine.quant import torch_int8 as quantization
from engine.quant.accuracy import compare
from engine.quant.calibration import builtin_calibration_planes, heldout_positions

POLICY_FC = "policyHead.fc1"


def as_evaluator(module: nn.Module, label: str) -> TorchEvaluator:
    """``module`` (planes -> logits, values) as the engine's evaluator, to compare recipes in memory."""
    return TorchEvaluator(module.eval(), label, ModelInfo(label, label, 0, 0), threads=1)


def static_variant(net: nn.Module, calibration: np.ndarray, activation: object = None,
                   **module_qconfigs: object) -> nn.Module:
    """The shipped static recipe without bias correction, with another ``activation`` observer everywhere
    (if given) and the given modules' qconfigs replaced (``None``: keep fp32)."""
    quantization.set_qengine(quantization.DEFAULT_QENGINE)
    with quantization.quiet():
        mapping = quantization.static_qconfig_mapping()
        if activation is not None:
            mapping.set_global(QConfig(activation=activation, weight=mapping.global_qconfig.weight))
        for name, qconfig in module_qconfigs.items():
            mapping.set_module_name(name.replace("__", "."), qconfig)
        prepared = prepare_fx(copy.deepcopy(net).eval(), mapping, (torch.zeros(1, INPUT_PLANES, 8, 8),))
        with torch.inference_mode():
            for start in range(0, len(calibration), 64):
                prepared(torch.from_numpy(calibration[start:start + 64]))
        return convert_fx(prepared)


def weight_only_int8(net: nn.Module, name: str) -> nn.Module:
    """fp32 network whose ``name`` Linear has per-channel int8-rounded weights (no activation quantization)."""
    net = copy.deepcopy(net)
    weight = net.get_submodule(name).weight
    with torch.no_grad():
        scale = weight.abs().amax(dim=1, keepdim=True) / 127
        weight.copy_(torch.round(weight / scale).clamp(-127, 127) * scale)
    return net


def dynamic_variant(net: nn.Module, qconfig: object) -> nn.Module:
    """Dynamic int8 of every Linear layer with ``qconfig``."""
    with quantization.quiet():
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(net).eval(), {nn.Linear: qconfig})


def top2_gaps(reference: TorchEvaluator, boards: list) -> np.ndarray:
    """Per position, the fp32 probability of its best legal move minus that of its second best."""
    logits, _ = reference.evaluate(encode_batch(boards))
    gaps = []
    for row, board in zip(logits, boards, strict=True):
        probs = np.sort(masked_softmax(row, np.unique(legal_move_indices(board)[1])))[::-1]
        gaps.append(probs[0] - probs[1] if len(probs) > 1 else 1.0)
    return np.array(gaps)


def main() -> None:
    """Print the accuracy table and the near-tie statistics."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=engine.default_model_path())
    parser.add_argument("--calibration", type=int, default=1024, help="built-in calibration positions used")
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = build_network(read_weights(args.model)).eval()
    calibration = builtin_calibration_planes()[: args.calibration]
    boards = heldout_positions(512)
    reference = as_evaluator(net, "fp32")

    def static(**options: bool) -> nn.Module:
        return quantization.quantize_static(net, (calibration[i:i + 64] for i in range(0, len(calibration), 64)),
                                            **options)

    variants: dict[str, Callable[[], nn.Module]] = {
        "dynamic, per-tensor Linear weights": lambda: dynamic_variant(net, default_dynamic_qconfig),
        "dynamic, per-channel Linear weights (shipped)": lambda: quantization.quantize_dynamic_linear(net),
        "fp32, policy Linear weights rounded to int8": lambda: weight_only_int8(net, POLICY_FC),
        "static, policy Linear per-tensor dynamic": lambda: static_variant(
            net, calibration, policyHead__fc1=default_dynamic_qconfig),
        "static, policy Linear per-channel dynamic": lambda: static(bias_correction=False),
        "static, policy Linear fp32": lambda: static_variant(net, calibration, policyHead__fc1=None),
        "static, policy head fp32": lambda: static_variant(
            net, calibration, policyHead__fc1=None, policyHead__conv1=None),
        "static, policy head and input conv fp32": lambda: static_variant(
            net, calibration, policyHead__fc1=None, policyHead__conv1=None, convBlock1=None),
        "static, input conv fp32": lambda: static(bias_correction=False, fp32_input_conv=True),
        "static, moving-average min/max activations": lambda: static_variant(
            net, calibration, MovingAverageMinMaxObserver.with_args(dtype=torch.quint8)),
        "static, histogram activations": lambda: static_variant(
            net, calibration, HistogramObserver.with_args(dtype=torch.quint8)),
        "static, bias corrected (shipped)": static,
        "static, bias corrected, input conv fp32": lambda: static(fp32_input_conv=True),
    }
    print(f"{args.model} against fp32 on {len(boards)} held-out positions, {len(calibration)} calibration "
          "(static rows: no bias correction unless they say so)")
    print(f"{'recipe':52s} {'value RMSE':>10s} {'max err':>8s} {'KL':>8s} {'top-1':>7s}")
    for label, make in variants.items():
        acc = compare(reference, as_evaluator(make(), label), boards)
        print(f"{label:52s} {acc.value_rmse:10.4f} {acc.value_max_error:8.3f} {acc.policy_kl:8.4f} "
              f"{100 * acc.top1_agreement:6.1f}%", flush=True)
    gaps = top2_gaps(reference, boards)
    print("fp32's best move ahead of its second by less than: "
          + ", ".join(f"{t:g} in {100 * np.mean(gaps < t):.1f}%" for t in (0.005, 0.01, 0.02, 0.05)))


if __name__ == "__main__":
    main()
