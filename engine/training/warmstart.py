"""Where a training run's network starts when it does not start fresh: the network of a model file
(``--init``), possibly deeper or with squeeze-excitation, or a ``seresnet`` network whose tower is an
``alphazero`` file's (``--tower-from``).

Both families share the tower: an input 3x3 convolution from the 16 planes and residual blocks of two 3x3
convolutions with batch norm. The alphazero convolutions carry a bias that the seresnet ones do not;
since each is followed by a batch norm, the bias folds exactly into the norm's running mean. With
squeeze-excitation, the SE's second layer starts at zero (it learns from the first step, and the first
layer after it), so its gate is ``sigmoid(0) = 1/2`` and its bias 0; the block's second batch norm is
doubled to make up for the gate, and the new tower computes what the old one did. The policy and WDL
heads have no counterpart and start fresh. A ``seresnet`` network without SE keeps everything, heads and
activation caps included, and gains an SE per block set up the same way, so it starts as the same function.

A ``seresnet`` network can also grow deeper: new residual blocks go after the last one, each with its second
convolution (and its SE's second layer) at zero, so it adds nothing to its input, which the ReLU before it
already made non-negative: the deeper network starts as the same function. Zeroing the convolution rather
than the batch norm's scale matters when fine-tuning with Adam: the convolution's gradient is then of the
usual size from the first step, where behind a zero scale every weight of the block gets gradients too
small to move it (a 6x64 grown to 10 blocks this way learned nothing in an epoch). A capped network's new
blocks take the caps of its last block.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelFileError
from ..nets.alphazero import AlphaZeroNet
from ..nets.files import read_weights
from ..nets.seresnet import SEResidualBlock, SEResNet
from ..nets.torch_files import build_network

log = logging.getLogger(__name__)


@torch.no_grad()
def _copy_conv_bn(conv_from: nn.Conv2d, bn_from: nn.BatchNorm2d, conv_to: nn.Conv2d, bn_to: nn.BatchNorm2d) -> None:
    """Copy a biased conv + BN into a bias-free conv + BN computing the same output."""
    conv_to.weight.copy_(conv_from.weight)
    bias = conv_from.bias if conv_from.bias is not None else torch.zeros_like(bn_from.running_mean)
    bn_to.running_mean.copy_(bn_from.running_mean - bias)
    bn_to.running_var.copy_(bn_from.running_var)
    bn_to.weight.copy_(bn_from.weight)
    bn_to.bias.copy_(bn_from.bias)
    bn_to.eps = bn_from.eps


@torch.no_grad()
def seresnet_from_alphazero(source: AlphaZeroNet, se_channels: int | None) -> SEResNet:
    """A :class:`SEResNet` of ``source``'s size whose tower computes ``source``'s tower (heads fresh).

    ``se_channels``: 0 for no squeeze-excitation, ``None`` for the family's default width.
    """
    net = SEResNet(source.num_blocks, source.num_filters, se_channels)
    _copy_conv_bn(source.convBlock1.conv1, source.convBlock1.bn1, net.input.conv1, net.input.bn1)
    for old, new in zip(source.residualBlocks, net.blocks, strict=True):
        _copy_conv_bn(old.conv1, old.bn1, new.conv1, new.bn1)
        _copy_conv_bn(old.conv2, old.bn2, new.conv2, new.bn2)
        _neutral_squeeze_excitation(new)
    return net


@torch.no_grad()
def _neutral_squeeze_excitation(block: SEResidualBlock) -> None:
    """Start ``block``'s SE (if any) at a constant gate of 1/2 and bias 0, and double the batch norm before it,
    so the block computes what it did without the SE."""
    if block.se is None:
        return
    nn.init.zeros_(block.se.fc2.weight)
    nn.init.zeros_(block.se.fc2.bias)
    block.bn2.weight.mul_(2.0)
    block.bn2.bias.mul_(2.0)


@torch.no_grad()
def with_squeeze_excitation(source: SEResNet, se_channels: int | None = None) -> SEResNet:
    """``source`` (a ``seresnet`` network without SE) with a squeeze-excitation in every block that starts
    neutral: the new network computes what ``source`` does. ``se_channels`` ``None``: the family's default width."""
    if source.se_channels:
        raise ValueError("the network already has squeeze-excitation")
    net = SEResNet(source.num_blocks, source.num_filters, se_channels, capped=source.capped)
    missing, unexpected = net.load_state_dict(source.state_dict(), strict=False)
    if unexpected or any(".se." not in key for key in missing):
        raise ValueError(f"not a seresnet network of the same size: missing {missing}, unexpected {unexpected}")
    for block in net.blocks:
        _neutral_squeeze_excitation(block)
    return net


@torch.no_grad()
def with_more_blocks(source: SEResNet, blocks: int) -> SEResNet:
    """``source`` (a ``seresnet`` network) with residual blocks appended up to ``blocks`` in all; the new
    blocks start as identities, so the new network computes what ``source`` does."""
    if blocks <= source.num_blocks:
        raise ValueError(f"the network already has {source.num_blocks} blocks (asked for {blocks})")
    net = SEResNet(blocks, source.num_filters, source.se_channels, capped=source.capped)
    missing, unexpected = net.load_state_dict(source.state_dict(), strict=False)
    new = {f"blocks.{i}." for i in range(source.num_blocks, blocks)}
    if unexpected or any(not key.startswith(tuple(new)) for key in missing):
        raise ValueError(f"not a seresnet network of {source.num_filters} filters: missing {missing}, "
                         f"unexpected {unexpected}")
    last = source.blocks[-1]
    for block in net.blocks[source.num_blocks:]:
        nn.init.zeros_(block.conv2.weight)  # a fresh batch norm after it (shift 0, mean 0) keeps it at 0
        if block.se is not None:
            nn.init.zeros_(block.se.fc2.weight)
            nn.init.zeros_(block.se.fc2.bias)
        if source.capped:
            for cap in ("cap1", "cap2", "cap3"):
                getattr(block, cap).load_state_dict(getattr(last, cap).state_dict())
    return net


def _read_network(path: Path, flag: str) -> AlphaZeroNet | SEResNet:
    try:
        return build_network(read_weights(path))
    except ModelFileError as exc:
        raise SystemExit(f"{flag}: {exc}") from None


def initial_network(path: Path, add_se: bool = False, blocks: int | None = None) -> AlphaZeroNet | SEResNet:
    """The fp32 network of a model file to start training from (``--init``); its family and size win over
    --family/--blocks/--filters. ``add_se`` (``--se``) gives a seresnet network without squeeze-excitation a
    neutral one in every block (:func:`with_squeeze_excitation`); ``blocks`` (``--grow-blocks``) appends
    residual blocks that start as identities (:func:`with_more_blocks`)."""
    net = _read_network(path, "--init")
    log.info("starting from the weights of %s (%s %dx%d)", path, net.family, net.num_blocks, net.num_filters)
    if (add_se or blocks is not None) and not isinstance(net, SEResNet):
        raise SystemExit(f"--se or --grow-blocks with --init: {path} is a {net.family} network; only seresnet "
                         "can gain an SE or blocks")
    if add_se and not net.se_channels:
        log.info("adding squeeze-excitation to every block, starting neutral")
        net = with_squeeze_excitation(net)
    if blocks is not None:
        if blocks <= net.num_blocks:
            raise SystemExit(f"--grow-blocks {blocks}: {path} already has {net.num_blocks} blocks")
        log.info("growing to %d blocks, the new ones starting as identities", blocks)
        net = with_more_blocks(net, blocks)
    return net


def network_with_tower_of(path: Path, se: bool) -> SEResNet:
    """A seresnet network whose residual tower starts as the alphazero model file's (``--tower-from``);
    its size is the file's."""
    source = _read_network(path, "--tower-from")
    if not isinstance(source, AlphaZeroNet):
        raise SystemExit(f"--tower-from: {path} is a {source.family} network; expected alphazero")
    log.info("starting the tower from %s (alphazero %dx%d), fresh policy and WDL heads", path, source.num_blocks,
             source.num_filters)
    return seresnet_from_alphazero(source, None if se else 0)


def tower_output(net: AlphaZeroNet | SEResNet, planes: torch.Tensor) -> torch.Tensor:
    """The residual tower's output (before the heads) for ``planes``: what :func:`seresnet_from_alphazero`
    keeps."""
    if isinstance(net, AlphaZeroNet):
        x = net.convBlock1(planes)
        blocks = net.residualBlocks
    else:
        x = net.input(planes)
        blocks = net.blocks
    for block in blocks:
        x = block(x)
    return x
