"""Random networks for the tests, saved as fp32 model files."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.nets.alphazero import AlphaZeroNet
from engine.nets.seresnet import SEResNet


def save_random_network(path: Path, blocks: int, filters: int, seed: int) -> Path:
    """Save a seeded random ``blocks`` x ``filters`` network whose BatchNorm statistics are moved away
    from the identity, as in a trained net (so that folding and quantizing them is exercised)."""
    torch.manual_seed(seed)
    return _save_with_moved_batchnorm(AlphaZeroNet(blocks, filters), path)


def save_random_seresnet(path: Path, blocks: int, filters: int, seed: int, se: bool = True) -> Path:
    """Save a seeded random network of the ``seresnet`` family (squeeze-excitation unless ``se`` is False),
    BatchNorm statistics moved away from the identity as in :func:`save_random_network`."""
    torch.manual_seed(seed)
    return _save_with_moved_batchnorm(SEResNet(blocks, filters, None if se else 0), path)


def _save_with_moved_batchnorm(net: torch.nn.Module, path: Path) -> Path:
    """Move ``net``'s BatchNorm statistics away from the identity, then save its state_dict to ``path``."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), path)
    return path


#: v7, the bundled network before v11: a trained network of pytorch-alpha-zero's architecture, for the tests of
#: the quantization recipes on real weights (their bounds were measured on it).
TRAINED_ALPHAZERO = Path(__file__).resolve().parent / "data" / "alphazero_v7_6x64.pt"

#: v11, the bundled network before v13: a trained ``seresnet`` network without activation caps, for the tests
#: that cap a trained network (``test_int8_ready``; their bounds were measured on it).
TRAINED_SERESNET_UNCAPPED = Path(__file__).resolve().parent / "data" / "seresnet_v11_6x64.pt"

#: The bundled network as the engine's ``info string loaded ...`` names it (family and size; the
#: ``test_default_model`` tests check the file is that).
BUNDLED_NETWORK = "seresnet 6x64"
