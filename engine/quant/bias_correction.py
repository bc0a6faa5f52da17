"""Empirical bias correction of int8 layers: each layer's mean output matched to fp32's on real positions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

#: Calibration positions (the first ones) on which :func:`correct_bias` (and its ONNX counterpart)
#: measures each layer's mean error.
BIAS_CORRECTION_POSITIONS = 1024


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


#: A correction is undone only when it moves an output further from fp32 by more than this share of the
#: error it had before: smaller changes are within what a finite set of positions can tell apart.
KEEP_TOLERANCE = 0.01


@dataclass(frozen=True)
class BiasCorrection:
    """What a bias correction did, measured against fp32 on the positions it was computed on."""

    layers: int
    value_rmse: tuple[float, float]  #: before, after
    logits_rmse: tuple[float, float]  #: before, after

    @property
    def kept(self) -> bool:
        """Whether the corrected biases were kept: neither the value nor the logits got further from fp32
        by more than :data:`KEEP_TOLERANCE` of their error before."""
        return all(after <= before * (1.0 + KEEP_TOLERANCE)
                   for before, after in (self.value_rmse, self.logits_rmse))


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
    along the network. The layers are corrected in graph
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

