"""The torch module of an lc0 residual network: 112 planes in, (1858 policy logits, 3 WDL logits) out.

Follows lc0's BLAS backend (``src/neural/backends/blas/network_blas.cc``, ``se_unit.cc``), with every
BatchNorm already folded into its convolution by :mod:`engine.nets.lc0.weights`:

* input: conv 3x3 (112 -> C) + ReLU;
* each block: conv 3x3 + ReLU, conv 3x3, then (with SE) global average pool -> Linear -> ReLU ->
  Linear to 2C, split into a scale (sigmoid) and a bias: ``relu(sigmoid(s) * y + b + x)``; without SE
  ``relu(y + x)``;
* policy: conv 3x3 (C -> C) + ReLU, conv 3x3 (C -> 80), its first 73 x 64 outputs gathered into lc0's
  1858 moves (:data:`engine.nets.lc0.policy.CONV_OUTPUT_OF_MOVE`);
* value: conv 1x1 (C -> 32) + ReLU, flatten channel-major, Linear -> ReLU, Linear to 3 (win, draw, loss
  logits from the side to move's view; softmax gives W/D/L).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .encoding import NUM_PLANES
from .policy import CONV_OUTPUT_OF_MOVE, NUM_MOVES
from .weights import Conv, Lc0Weights


def _conv(conv: Conv) -> nn.Conv2d:
    out_channels, in_channels, k, _ = conv.weight.shape
    layer = nn.Conv2d(in_channels, out_channels, k, padding=k // 2, bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(conv.weight))
        layer.bias.copy_(torch.from_numpy(conv.bias))
    return layer


def _linear(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        layer.bias.copy_(torch.from_numpy(bias))
    return layer


class SqueezeExcitation(nn.Module):
    """lc0's SE: pooled channels -> FC -> ReLU -> FC to 2C = (scale logits, biases), applied to the block's
    output ``y`` as ``sigmoid(scale) * y + bias`` (modules and slices, so that FX graph-mode int8 takes it)."""

    def __init__(self, fc1: nn.Linear, fc2: nn.Linear) -> None:
        super().__init__()
        self.filters = fc2.out_features // 2
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2, self.relu = fc1, fc2, nn.ReLU()
        self.sigmoid = nn.Sigmoid()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """``y`` ``(B, C, 8, 8)`` gated and shifted per channel."""
        s = self.fc2(self.relu(self.fc1(torch.flatten(self.pool(y), 1))))
        gate = self.sigmoid(s[:, : self.filters]).reshape(-1, self.filters, 1, 1)
        bias = s[:, self.filters:].reshape(-1, self.filters, 1, 1)
        return y * gate + bias


class ResidualBlock(nn.Module):
    """conv -> ReLU -> conv (-> SE) + skip -> ReLU."""

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, se: SqueezeExcitation | None) -> None:
        super().__init__()
        self.conv1, self.conv2, self.se = conv1, conv2, se
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output for input ``x`` ``(B, C, 8, 8)``."""
        y = self.conv2(self.relu1(self.conv1(x)))
        if self.se is not None:
            y = self.se(y)
        return self.relu2(y + x)


class Lc0Net(nn.Module):
    """An lc0 residual network with a convolutional policy head and a WDL value head."""

    def __init__(self, weights: Lc0Weights) -> None:
        super().__init__()
        self.blocks_count = len(weights.blocks)
        self.filters = weights.filters
        self.input = _conv(weights.input)
        self.input_relu = nn.ReLU()
        self.tower = nn.Sequential(*[
            ResidualBlock(_conv(b.conv1), _conv(b.conv2),
                          SqueezeExcitation(_linear(b.se.w1, b.se.b1), _linear(b.se.w2, b.se.b2)) if b.se else None)
            for b in weights.blocks])
        self.policy1 = _conv(weights.policy1)
        self.policy_relu = nn.ReLU()
        self.policy = _conv(weights.policy)
        self.policy_flatten = nn.Flatten()  # a module, so that static int8 can name it to keep the logits fp32
        self.value = _conv(weights.value)
        self.value_relu = nn.ReLU()
        self.value_fc1 = _linear(*weights.value_fc1)
        self.value_fc1_relu = nn.ReLU()
        self.value_fc2 = _linear(*weights.value_fc2)
        self.register_buffer("move_outputs", torch.from_numpy(CONV_OUTPUT_OF_MOVE), persistent=False)

    def forward(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits ``(B, 1858)`` and WDL logits ``(B, 3)`` for planes ``(B, 112, 8, 8)``."""
        x = self.tower(self.input_relu(self.input(planes)))
        p = self.policy_flatten(self.policy(self.policy_relu(self.policy1(x))))
        policy = p.index_select(1, self.move_outputs)
        v = torch.flatten(self.value_relu(self.value(x)), 1)
        wdl = self.value_fc2(self.value_fc1_relu(self.value_fc1(v)))
        return policy, wdl


def build_lc0_net(weights: Lc0Weights) -> Lc0Net:
    """The eval-mode torch module of a read lc0 network."""
    return Lc0Net(weights).eval()


__all__ = ["NUM_MOVES", "NUM_PLANES", "Lc0Net", "build_lc0_net"]
