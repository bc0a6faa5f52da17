"""GPTQ weight rounding for static int8: the int8 weights chosen to keep each layer's outputs, not its
weights, closest to fp32.

Rounding every weight to its nearest int8 step makes errors that add up along a layer's inputs.
GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
Transformers", 2022) rounds a layer's input columns one at a time and moves each column's rounding error
onto the columns not rounded yet, in the proportions that cancel it best on the layer's real inputs
(through the inverse of their Gram matrix ``X^T X``). The int8 grid (per-channel scales) stays the one
torch's observers chose, so file size and speed do not change.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .bias_correction import int8_layers

#: Share of the Gram matrix's mean diagonal added to its diagonal, so that it can be inverted.
DAMPING = 0.01
#: Positions whose unfolded patches are multiplied at a time (bounds the memory a 20x256 trunk needs).
GRAM_CHUNK_POSITIONS = 128


def gram(inputs: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Gram matrix ``X^T X`` (float64) of a layer's inputs, with a convolution's 3x3 patches unfolded, so
    that its rows and columns match the layer's weight flattened per output channel."""
    x = inputs.dequantize() if inputs.is_quantized else inputs
    total: torch.Tensor | None = None
    for start in range(0, len(x), GRAM_CHUNK_POSITIONS):
        chunk = x[start:start + GRAM_CHUNK_POSITIONS]
        if chunk.dim() == 4:
            kernel = layer.kernel_size
            chunk = F.unfold(chunk, kernel, padding=layer.padding).transpose(1, 2).reshape(
                -1, chunk.shape[1] * kernel[0] * kernel[1])
        part = (chunk.T @ chunk).double()  # float32 products of 8,192 patches, summed in float64
        total = part if total is None else total + part
    if total is None:
        raise ValueError("a Gram matrix needs at least one position")
    return total


def gptq_round(weight: torch.Tensor, gram_matrix: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``weight`` (output channels first) rounded onto the int8 grid ``scales`` (one step per output
    channel, zero point 0) by GPTQ; returned as float values on that grid.

    The columns are rounded in order of decreasing input energy (the Gram matrix's diagonal, GPTQ's
    "act-order"), so the inputs that matter most are rounded while the most columns remain to absorb the
    error.
    """
    order = torch.argsort(torch.diag(gram_matrix), descending=True)
    w = weight.reshape(weight.shape[0], -1)[:, order].double()
    h = gram_matrix[order][:, order].clone()
    dead = torch.diag(h) == 0  # inputs that are always zero: their weights do not matter
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += DAMPING * torch.mean(torch.diag(h)) * torch.eye(len(h), dtype=h.dtype)
    inverse = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    step = scales.double()[:, None]
    for i in range(w.shape[1]):
        column = w[:, i:i + 1].clone()
        rounded = torch.clamp(torch.round(column / step), -128, 127) * step
        w[:, i:i + 1] = rounded
        w[:, i + 1:] -= ((column - rounded) / inverse[i, i]) @ inverse[i:i + 1, i + 1:]
    return w[:, torch.argsort(order)].float().reshape(weight.shape)


def float_weight(reference: nn.Module, name: str) -> torch.Tensor:
    """The fp32 weight (BatchNorm folded) of layer ``name`` in the prepared FX model ``reference``."""
    source = reference.get_submodule(name)
    return (source[0] if isinstance(source, nn.Sequential) else source).weight.detach()


def _gptq_weight(old: torch.Tensor, weight: torch.Tensor, gram_matrix: torch.Tensor) -> torch.Tensor:
    """The GPTQ rounding of ``weight`` as a quantized tensor on the grid of the quantized weight ``old``
    (per-channel, or per-tensor as qnnpack's)."""
    if old.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        scales = old.q_per_channel_scales()
        rounded = gptq_round(weight, gram_matrix, scales)
        return torch.quantize_per_channel(rounded, scales.float(), old.q_per_channel_zero_points(),
                                          old.q_per_channel_axis(), torch.qint8)
    if old.q_zero_point() != 0:
        raise ValueError("GPTQ rounding needs symmetric int8 weights (zero point 0)")
    rounded = gptq_round(weight, gram_matrix, torch.full((weight.shape[0],), old.q_scale(), dtype=torch.float64))
    return torch.quantize_per_tensor(rounded, old.q_scale(), 0, torch.qint8)


def round_weights_gptq(reference: nn.Module, quantized: nn.Module, batches: list[np.ndarray],
                       layer_progress: Callable[[int, int], None] | None = None) -> int:
    """Replace the int8 weights of the converted FX model ``quantized`` by GPTQ roundings of the fp32
    weights of ``reference`` (the prepared model it was converted from), at the same scales; returns how
    many layers were rounded.

    One forward pass of the positions in ``batches`` through ``quantized``: each layer is rounded when
    the pass reaches it, with the Gram matrix of its own int8 input, so it also makes up for what the
    layers before it (already rounded) and the int8 activations changed.
    """
    names = int8_layers(quantized)

    def replace(index: int, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            handles.pop(name).remove()
            module.set_weight_bias(_gptq_weight(module.weight(), float_weight(reference, name),
                                                gram(inputs[0], module)), module.bias())
            if layer_progress is not None:
                layer_progress(index + 1, len(names))
        return hook

    planes = torch.from_numpy(np.concatenate(batches))
    with torch.inference_mode():
        handles = {name: quantized.get_submodule(name).register_forward_pre_hook(replace(index, name))
                   for index, name in enumerate(names)}
        try:
            quantized(planes)
        finally:
            for handle in handles.values():
                handle.remove()
    return len(names)
