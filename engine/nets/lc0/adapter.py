"""An lc0 network behind azengine's evaluator interface, in lc0's own terms (``engine.interface.LC0_INPUT``).

:class:`Lc0Evaluation` takes lc0's 112 planes (:mod:`engine.nets.lc0.encoding`; the search's gatherer
builds the same in C, with the game's history and the path in the tree) and gives the logits of lc0's
1858 moves (:mod:`engine.nets.lc0.policy`: each underpromotion its own move) and the WDL head's win/draw/loss
probabilities; the evaluator derives the value ``W - L``. The search maps the 1858 logits onto each
leaf's legal moves itself, so no 4608-index table is involved.

The int8 conversions (:mod:`engine.quant`) quantize the wrapped network ``net``; the WDL softmax after it
stays fp32. Their files take the same 112 planes and give the same outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .encoding import NUM_PLANES
from .network import Lc0Net, build_lc0_net
from .weights import read_lc0

#: The family name of lc0 networks in model files' metadata and :class:`engine.interface.ModelInfo`.
FAMILY = "lc0"


class Lc0Evaluation(nn.Module):
    """Wraps an :class:`Lc0Net`: planes ``(B, 112, 8, 8)`` -> (logits ``(B, 1858)``, W/D/L ``(B, 3)``)."""

    #: Planes per position this module takes (the ONNX export and the int8 conversions read it).
    input_planes = NUM_PLANES
    family = FAMILY

    def __init__(self, net: Lc0Net) -> None:
        super().__init__()
        self.net = net
        self.blocks = self.num_blocks = net.blocks_count
        self.filters = self.num_filters = net.filters

    def forward(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """lc0's move logits ``(B, 1858)`` and win/draw/loss probabilities ``(B, 3)`` for planes
        ``(B, 112, 8, 8)``."""
        policy, wdl = self.net(planes)
        return policy, torch.softmax(wdl, dim=1)


def load_lc0_evaluation(path: str | Path) -> tuple[Lc0Evaluation, dict[str, Any]]:
    """Read an lc0 file into an eval-mode :class:`Lc0Evaluation` and the metadata to show for it."""
    weights = read_lc0(path)
    module = Lc0Evaluation(build_lc0_net(weights)).eval()
    return module, {"family": FAMILY, **weights.formats, "se": weights.has_se, **evaluation_metadata(module)}


def evaluation_metadata(module: Lc0Evaluation) -> dict[str, Any]:
    """What a file made of ``module`` (an int8 or ONNX file) says of the network in its metadata beside kind
    and sizes: the input it takes (``input_planes``: lc0's 112 with history), its squeeze-excitation width
    (0: none) and a description."""
    se = module.net.tower[0].se if len(module.net.tower) else None
    return {"input_planes": NUM_PLANES, "se_channels": se.fc1.out_features if se is not None else 0,
            "description": f"lc0 network, {module.blocks}x{module.filters}{' SE' if se is not None else ''}, "
                           f"112 planes with history"}
