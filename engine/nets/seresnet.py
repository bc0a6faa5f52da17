"""azengine's own network family ``seresnet``: a residual tower with squeeze-excitation, a convolutional
policy head and a WDL value head.

- Input: the 16 planes of :mod:`engine.encoding`; ``input`` = conv3x3 (16->F) + BN + ReLU.
- ``blocks.{i}``: conv3x3 + BN + ReLU, conv3x3 + BN, optional squeeze-excitation (``se``), add the block's
  input, ReLU. The SE is lc0's: global average pool -> ``fc1`` (F->S) -> ReLU -> ``fc2`` (S->2F), split
  into a gate ``g`` and a bias ``b``, output ``sigmoid(g) * y + b`` per channel. The additive bias (beside
  the plain scale of the original SE) lets a block shift whole channels by what it sees of the board as a
  whole, for 2% more parameters; it is what the lc0 networks we measure against (Maia) use.
- ``policy``: conv3x3 (F->F) + BN + ReLU, then ``conv2`` 1x1 (F->72) with bias. Its ``(72, 8, 8)`` output
  flattened is the 4608 move index itself (``plane*64 + rank*8 + file``, :mod:`engine.encoding`): no
  Linear layer.
- ``value``: conv1x1 (F->32) + BN + ReLU, flatten 2048 -> ``fc1`` 128 -> ReLU -> ``fc2`` 3 WDL logits
  (win, draw, loss for the side to move), softmax in ``forward``.

A network may be *capped* (``capped=True``): every tensor that int8 inference quantizes (each ReLU's
output, and each block's second convolution before the skip addition) is clamped to bounds measured on
real positions (:class:`ActivationCap`, buffers ``low`` and ``high``), so that int8 calibration ranges
are tight and the clamp is part of the fp32 network too (``engine.training.int8_ready``).

``forward(planes)`` returns ``(policy logits (B, 4608), wdl probabilities (B, 3))``;
:meth:`SEResNet.wdl_logits` gives the logits for training. Blocks, filters and the SE width are read
from the tensor shapes when a file is loaded (:func:`architecture_of`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..encoding import NUM_PLANES as INPUT_PLANES
from ..encoding import POLICY_SIZE

FAMILY = "seresnet"
#: Policy planes: 64 sliding-move planes and 8 knight planes (``POLICY_SIZE / 64``).
POLICY_PLANES = POLICY_SIZE // 64
#: Channels of the value head's 1x1 convolution and width of its hidden layer.
VALUE_CHANNELS = 32
VALUE_HIDDEN = 128
#: The SE bottleneck is ``filters // SE_RATIO`` wide by default.
SE_RATIO = 4
#: The key every file of this family has (and pytorch-alpha-zero's files have not).
MARKER_KEY = "input.conv1.weight"
#: The key a capped network's file has.
CAPPED_KEY = "input.cap.high"


class ActivationCap(nn.Module):
    """Clamps its input to ``[low, high]`` (two scalar buffers, stored in the model file)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("low", torch.tensor(float("-inf")))
        self.register_buffer("high", torch.tensor(float("inf")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.low, self.high)


class FrozenCap(nn.Module):
    """An :class:`ActivationCap` with its bounds as Python numbers (constants to a graph trace)."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.low, self.high)


def _cap(capped: bool) -> ActivationCap | nn.Identity:
    return ActivationCap() if capped else nn.Identity()


def with_frozen_caps(net: nn.Module) -> nn.Module:
    """``net`` itself when it has no :class:`ActivationCap`, else a copy with each replaced by a
    :class:`FrozenCap` (what torch's FX quantization traces)."""
    names = [name for name, module in net.named_modules() if isinstance(module, ActivationCap)]
    if not names:
        return net
    frozen = copy.deepcopy(net)
    for name in names:
        parent, _, attribute = name.rpartition(".")
        cap = frozen.get_submodule(name)
        setattr(frozen.get_submodule(parent), attribute, FrozenCap(float(cap.low), float(cap.high)))
    return frozen


class InputBlock(nn.Module):
    """3x3 convolution from the 16 input planes, batch norm, ReLU."""

    def __init__(self, filters: int, capped: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(INPUT_PLANES, filters, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters)
        self.relu1 = nn.ReLU()
        self.cap = _cap(capped)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cap(self.relu1(self.bn1(self.conv1(x))))


class SqueezeExcitation(nn.Module):
    """lc0-style SE: per-channel gate and bias computed from the channel means of the block's output."""

    def __init__(self, filters: int, channels: int) -> None:
        super().__init__()
        self.filters = filters
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(filters, channels)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(channels, 2 * filters)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(self.relu1(self.fc1(torch.flatten(self.pool(x), 1))))
        gate = self.sigmoid(s[:, : self.filters]).reshape(-1, self.filters, 1, 1)
        bias = s[:, self.filters:].reshape(-1, self.filters, 1, 1)
        return x * gate + bias


class SEResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, optional squeeze-excitation, and a skip connection."""

    def __init__(self, filters: int, se_channels: int, capped: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(filters, filters, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters)
        self.relu1 = nn.ReLU()
        self.cap1 = _cap(capped)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(filters)
        self.se = SqueezeExcitation(filters, se_channels) if se_channels else None
        self.cap2 = _cap(capped)
        self.relu2 = nn.ReLU()
        self.cap3 = _cap(capped)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.cap1(self.relu1(self.bn1(self.conv1(x))))))
        if self.se is not None:
            y = self.se(y)
        return self.cap3(self.relu2(self.cap2(y) + x))


class ConvPolicyHead(nn.Module):
    """3x3 convolution + BN + ReLU, then a 1x1 convolution to 72 planes: the 4608 move logits (unmasked)."""

    def __init__(self, filters: int, capped: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(filters, filters, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters)
        self.relu1 = nn.ReLU()
        self.cap1 = _cap(capped)
        self.conv2 = nn.Conv2d(filters, POLICY_PLANES, 1)
        self.flatten = nn.Flatten()  # a module, so that static int8 can name it to keep the logits fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.conv2(self.cap1(self.relu1(self.bn1(self.conv1(x))))))


class WdlValueHead(nn.Module):
    """1x1 convolution to 32 planes, then 2048 -> 128 -> 3 win/draw/loss logits (side to move)."""

    def __init__(self, filters: int, capped: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(filters, VALUE_CHANNELS, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(VALUE_CHANNELS)
        self.relu1 = nn.ReLU()
        self.cap1 = _cap(capped)
        self.fc1 = nn.Linear(VALUE_CHANNELS * 64, VALUE_HIDDEN)
        self.relu2 = nn.ReLU()
        self.cap2 = _cap(capped)
        self.fc2 = nn.Linear(VALUE_HIDDEN, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cap1(self.relu1(self.bn1(self.conv1(x))))
        return self.fc2(self.cap2(self.relu2(self.fc1(torch.flatten(x, 1)))))


class WdlSoftmax(nn.Module):
    """Softmax of the WDL logits, always in fp32 (quantization leaves this module out)."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=1)


@dataclass(frozen=True)
class SEResNetShape:
    """The sizes that define an :class:`SEResNet` (``se_channels`` 0: no squeeze-excitation)."""

    blocks: int
    filters: int
    se_channels: int
    capped: bool = False


class SEResNet(nn.Module):
    """Residual tower with optional squeeze-excitation, convolutional policy head and WDL value head.

    ``forward(planes)`` takes float32 planes ``(B, 16, 8, 8)`` and returns ``(logits, wdl)``: policy logits
    ``(B, 4608)`` and win/draw/loss probabilities ``(B, 3)`` for the side to move.
    """

    family = FAMILY

    def __init__(self, num_blocks: int = 6, num_filters: int = 64, se_channels: int | None = None,
                 capped: bool = False) -> None:
        super().__init__()
        self.num_blocks = num_blocks
        self.num_filters = num_filters
        self.se_channels = max(1, num_filters // SE_RATIO) if se_channels is None else se_channels
        self.capped = capped
        self.input = InputBlock(num_filters, capped)
        self.blocks = nn.ModuleList(SEResidualBlock(num_filters, self.se_channels, capped) for _ in range(num_blocks))
        self.policy = ConvPolicyHead(num_filters, capped)
        self.value = WdlValueHead(num_filters, capped)
        self.softmax = WdlSoftmax()

    def wdl_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits ``(B, 4608)`` and WDL logits ``(B, 3)`` (what training's losses take)."""
        x = self.input(x)
        for block in self.blocks:
            x = block(x)
        return self.policy(x), self.value(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, wdl = self.wdl_logits(x)
        return logits, self.softmax(wdl)

    @property
    def shape(self) -> SEResNetShape:
        """Blocks, filters, SE width and caps of this network."""
        return SEResNetShape(self.num_blocks, self.num_filters, self.se_channels, self.capped)


def is_seresnet(state_dict: Mapping[str, object]) -> bool:
    """Whether a state_dict's keys are this family's."""
    return MARKER_KEY in state_dict


def architecture_of(state_dict: Mapping[str, object]) -> SEResNetShape:
    """Blocks, filters, SE width and caps read from the tensors of a state_dict of this family.

    Raises ``ValueError`` when the shapes do not look like this network.
    """
    weight = state_dict.get(MARKER_KEY)
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"{MARKER_KEY} is missing or not a tensor")
    shape = tuple(weight.shape)
    if len(shape) != 4 or shape[1] != INPUT_PLANES or shape[2:] != (3, 3):
        raise ValueError(f"{MARKER_KEY} has shape {list(shape)}, expected [F, 16, 3, 3]")
    blocks = 0
    while f"blocks.{blocks}.conv1.weight" in state_dict:
        blocks += 1
    se = state_dict.get("blocks.0.se.fc1.weight")
    se_channels = int(se.shape[0]) if isinstance(se, torch.Tensor) else 0
    return SEResNetShape(blocks, int(shape[0]), se_channels, CAPPED_KEY in state_dict)
