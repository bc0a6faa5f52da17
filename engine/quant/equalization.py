"""Channel equalization of the residual stream, before static int8 quantization.

Static int8 stores each activation tensor with one scale, set by its largest value over the calibration
positions. In the residual stream (the tensor every block adds onto) a few channels carry rare values
two to three times larger than most channels ever reach, so most channels get only a fraction of the
256 levels. Rescaling the stream per channel fixes that without changing what the network computes:
ReLU commutes with a positive factor, so multiplying channel ``c`` of every tensor in the stream by
``s_c`` (the input block's and every second convolution's output, through their BatchNorm) and dividing
the input weights of every layer that reads the stream (each block's first convolution and both heads'
convolutions) by ``s_c`` leaves the network's outputs equal up to float rounding. The skip additions
add two tensors scaled alike, so they stay exact too.

``s_c`` makes channel ``c`` reach, in the tensor of the stream where it is relatively largest, that
tensor's largest value: every tensor's range stays what it was, and no channel is left using a small
part of it. (The idea is the cross-layer equalization of Nagel et al., "Data-Free Quantization Through
Weight Equalization and Bias Correction", 2019, applied here to activation ranges measured on real
positions.)

The ``seresnet`` family's stream is equalized the same way; its squeeze-excitation reads the stream's
block output too (its first Linear layer's inputs are divided by ``s_c``) and adds a per-channel bias to
it (the bias half of its second Linear layer's outputs is multiplied by ``s_c``); the gate is unchanged.
The ``lc0`` family's network (BatchNorm already folded when the file is read) is rescaled the same way
through its convolutions' weights and biases.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..nets.alphazero import AlphaZeroNet
from ..nets.lc0.adapter import Lc0Evaluation
from ..nets.seresnet import SEResNet

Network = AlphaZeroNet | SEResNet | Lc0Evaluation

#: Channels whose largest value is below this share of their tensor's largest are scaled as if they
#: reached it (a channel that is never positive must not get an unbounded factor).
SMALLEST_RELATIVE_RANGE = 1e-3


def stream_names(net: Network) -> list[str]:
    """The modules whose outputs form the residual stream: the input block's ReLU and each block's last."""
    if isinstance(net, Lc0Evaluation):
        return ["net.input_relu"] + [f"net.tower.{i}.relu2" for i in range(len(net.net.tower))]
    if isinstance(net, SEResNet):
        return ["input.relu1"] + [f"blocks.{i}.relu2" for i in range(len(net.blocks))]
    return ["convBlock1.relu1"] + [f"residualBlocks.{i}.relu2" for i in range(len(net.residualBlocks))]


def channel_maxima(net: nn.Module, names: list[str], batches: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """Per channel, the largest output of each named module over the positions in ``batches``."""
    maxima: dict[str, torch.Tensor] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            batch_max = output.detach().amax(dim=(0, 2, 3))
            maxima[name] = torch.maximum(maxima[name], batch_max) if name in maxima else batch_max
        return hook

    handles = [net.get_submodule(name).register_forward_hook(record(name)) for name in names]
    try:
        with torch.inference_mode():
            for batch in batches:
                net(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
    finally:
        for handle in handles:
            handle.remove()
    return maxima


def stream_scales(net: Network, batches: list[np.ndarray]) -> torch.Tensor:
    """The factor ``s_c`` of each residual-stream channel (see the module docstring); ``net`` in eval mode."""
    maxima = channel_maxima(net, stream_names(net), batches)
    relative = torch.stack([m / m.max().clamp_min(1e-12) for m in maxima.values()]).amax(dim=0)
    return 1.0 / relative.clamp_min(SMALLEST_RELATIVE_RANGE)


def _scale_outputs(bn: nn.BatchNorm2d, scales: torch.Tensor) -> None:
    bn.weight.data.mul_(scales)
    bn.bias.data.mul_(scales)


def _divide_inputs(conv: nn.Conv2d, scales: torch.Tensor) -> None:
    conv.weight.data.div_(scales[None, :, None, None])


def equalizable(net: Network) -> bool:
    """Whether :func:`equalize_stream` applies to ``net``: not to a capped ``seresnet`` network, whose caps
    clamp whole tensors alike (rescaled channels would need a cap each)."""
    return not getattr(net, "capped", False)


def equalize_stream(net: Network, batches: list[np.ndarray]) -> Network:
    """A copy of ``net`` whose residual-stream channels are rescaled to use their tensors' full range.

    Its outputs equal ``net``'s up to float rounding; ``batches`` are encoded positions (the calibration
    positions) on which the channels' ranges are measured.
    """
    result = copy.deepcopy(net).eval()  # the caller's network keeps its weights and its mode
    scales = stream_scales(result, batches)
    if isinstance(result, SEResNet):
        _equalize_seresnet(result, scales)
        return result
    if isinstance(result, Lc0Evaluation):
        _equalize_lc0(result, scales)
        return result
    _scale_outputs(result.convBlock1.bn1, scales)
    for block in result.residualBlocks:
        _divide_inputs(block.conv1, scales)
        _scale_outputs(block.bn2, scales)
    _divide_inputs(result.valueHead.conv1, scales)
    _divide_inputs(result.policyHead.conv1, scales)
    return result


def _scale_squeeze_excitation(se: nn.Module, scales: torch.Tensor) -> None:
    """An lc0-style SE reads the rescaled stream (its first Linear divides) and adds a bias to it (the
    bias half of its second Linear scales)."""
    se.fc1.weight.data.div_(scales[None, :])
    se.fc2.weight.data[se.filters:].mul_(scales[:, None])
    se.fc2.bias.data[se.filters:].mul_(scales)


def _equalize_seresnet(net: SEResNet, scales: torch.Tensor) -> None:
    """:func:`equalize_stream`'s rescaling of a ``seresnet`` network, in place."""
    _scale_outputs(net.input.bn1, scales)
    for block in net.blocks:
        _divide_inputs(block.conv1, scales)
        _scale_outputs(block.bn2, scales)
        if block.se is not None:
            _scale_squeeze_excitation(block.se, scales)
    _divide_inputs(net.policy.conv1, scales)
    _divide_inputs(net.value.conv1, scales)


def _scale_conv_outputs(conv: nn.Conv2d, scales: torch.Tensor) -> None:
    conv.weight.data.mul_(scales[:, None, None, None])
    conv.bias.data.mul_(scales)


def _equalize_lc0(wrapper: Lc0Evaluation, scales: torch.Tensor) -> None:
    """:func:`equalize_stream`'s rescaling of an ``lc0`` network (convolutions with folded biases), in place."""
    net = wrapper.net
    _scale_conv_outputs(net.input, scales)
    for block in net.tower:
        _divide_inputs(block.conv1, scales)
        _scale_conv_outputs(block.conv2, scales)
        if block.se is not None:
            _scale_squeeze_excitation(block.se, scales)
    _divide_inputs(net.policy1, scales)
    _divide_inputs(net.value, scales)
