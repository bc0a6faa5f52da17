"""The residual policy/value network, with pytorch-alpha-zero's module names.

The submodule names (``convBlock1``, ``residualBlocks.{i}``, ``valueHead``, ``policyHead`` and their
``conv1``/``bn1``/``fc1``... children) are part of the file format: pytorch-alpha-zero's model files
are bare ``state_dict`` s of this module and load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..encoding import NUM_PLANES as INPUT_PLANES
from ..encoding import POLICY_SIZE


class ConvBlock(nn.Module):
    """3x3 convolution, batch norm, ReLU: the network's input layer."""

    def __init__(self, in_channels: int, filters: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, filters, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(filters)
        self.relu1 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu1(self.bn1(self.conv1(x)))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a skip connection."""

    def __init__(self, filters: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(filters, filters, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(filters)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(filters)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + x)


class ValueHead(nn.Module):
    """1x1 convolution to one plane, then 64 -> 256 -> 1 with tanh: the side to move's expected score."""

    def __init__(self, filters: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(filters, 1, 1)
        self.bn1 = nn.BatchNorm2d(1)
        self.relu1 = nn.ReLU()
        self.fc1 = nn.Linear(64, 256)
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(256, 1)
        self.tanh1 = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.fc1(torch.flatten(x, 1)))
        return self.tanh1(self.fc2(x)).squeeze(1)


class PolicyHead(nn.Module):
    """1x1 convolution to two planes, then a linear layer to 4608 move logits (unmasked)."""

    def __init__(self, filters: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(filters, 2, 1)
        self.bn1 = nn.BatchNorm2d(2)
        self.relu1 = nn.ReLU()
        self.fc1 = nn.Linear(128, POLICY_SIZE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        return self.fc1(torch.flatten(x, 1))


class AlphaZeroNet(nn.Module):
    """AlphaZero-style residual tower with a policy and a value head.

    ``forward(planes)`` takes float32 planes ``(B, 16, 8, 8)`` and returns ``(logits, values)``:
    policy logits ``(B, 4608)`` and values ``(B,)`` in [-1, 1] from the side to move's view.
    """

    family = "alphazero"

    def __init__(self, num_blocks: int = 10, num_filters: int = 128) -> None:
        super().__init__()
        self.num_blocks = num_blocks
        self.num_filters = num_filters
        self.convBlock1 = ConvBlock(INPUT_PLANES, num_filters)
        self.residualBlocks = nn.ModuleList(ResidualBlock(num_filters) for _ in range(num_blocks))
        self.valueHead = ValueHead(num_filters)
        self.policyHead = PolicyHead(num_filters)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.convBlock1(x)
        for block in self.residualBlocks:
            x = block(x)
        return self.policyHead(x), self.valueHead(x)


def architecture_of(state_dict: Mapping[str, object]) -> tuple[int, int]:
    """Return ``(num_blocks, num_filters)`` read from the tensor shapes of a state_dict.

    Raises ``KeyError`` when the input layer's weight is missing and ``ValueError`` when shapes
    do not look like this network.
    """
    weight = state_dict["convBlock1.conv1.weight"]
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"convBlock1.conv1.weight is a {type(weight).__name__}, not a tensor")
    shape = tuple(weight.shape)
    if len(shape) != 4 or shape[1] != INPUT_PLANES or shape[2:] != (3, 3):
        raise ValueError(f"convBlock1.conv1.weight has shape {list(shape)}, expected [F, 16, 3, 3]")
    blocks = 0
    while f"residualBlocks.{blocks}.conv1.weight" in state_dict:
        blocks += 1
    return blocks, int(shape[0])
