"""An lc0 network behind azengine's evaluator interface: 16 planes in, (4608 logits, value) out.

The search hands every evaluator azengine's 16-plane encoding (:mod:`engine.encoding`). :class:`Lc0As16Plane`
turns those planes into lc0's 112 (:mod:`engine.nets.lc0.encoding`) and lc0's 1858 logits into the
4608-entry index, so an lc0 network plays under today's search unchanged. What the 16 planes lack:

* history: every one of lc0's 8 history slots holds the current position (lc0's ``fen_only`` fill, as
  if each position were given by FEN), except for the starting position, which has no fill; no
  repetition planes;
* the side to move: plane 108 (black to move) stays zero;
* the rule-50 count (plane 109 zero) and en passant (no double step undone in the fill).

Policy: each 4608 index takes the logit of the lc0 move it stands for. A pawn move from the 7th to
the 8th rank takes the queen promotion's logit (underpromotions share that index in azengine's
encoding), and the king's two-square step from e1 takes lc0's castling move (king takes rook); which
applies is read from the planes (our pawn / our king on the from-square). Indices with no lc0 move
get logit 0 (the search masks them). Value: ``W - L`` of the WDL head's softmax.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import chess
import numpy as np
import torch
from torch import nn

from ...encoding import NUM_PLANES, POLICY_SIZE, TO_SQUARE_OF_INDEX, encode_position
from .encoding import HISTORY, PLANES_PER_BOARD
from .network import Lc0Net, build_lc0_net
from .policy import INDEX_OF, NUM_MOVES
from .weights import read_lc0

# azengine's 16 planes: P p R r B b N n Q q K k, our O-O, their O-O, our O-O-O, their O-O-O
_OURS = [0, 6, 4, 2, 8, 10]  # lc0's order P N B R Q K
_THEIRS = [1, 7, 5, 3, 9, 11]
_CASTLING = [14, 12, 15, 13]  # lc0's 104-107: our O-O-O, our O-O, their O-O-O, their O-O
_OUR_PAWNS, _OUR_KING = 0, 10
NO_MOVE = NUM_MOVES  # the index of the extra zero logit
#: The family name of lc0 networks in model files' metadata and :class:`engine.interface.ModelInfo`.
FAMILY = "lc0"


def _policy_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each 4608 index: lc0 index of the plain move, of the queen promotion, of castling (or NO_MOVE)."""
    plain = np.full(POLICY_SIZE, NO_MOVE, dtype=np.int64)
    for index in range(POLICY_SIZE):
        dst = int(TO_SQUARE_OF_INDEX[index])
        if dst >= 0:
            plain[index] = INDEX_OF[chess.square_name(index % 64) + chess.square_name(dst)]
    queen, castle = plain.copy(), plain.copy()
    for index in range(POLICY_SIZE):
        src, dst = index % 64, int(TO_SQUARE_OF_INDEX[index])
        if dst >= 56 and src // 8 == 6 and abs(dst % 8 - src % 8) <= 1:
            queen[index] = INDEX_OF[chess.square_name(src) + chess.square_name(dst) + "q"]
        if src == chess.E1 and dst in (chess.G1, chess.C1):
            castle[index] = INDEX_OF["e1h1" if dst == chess.G1 else "e1a1"]
    return plain, queen, castle


class Lc0As16Plane(nn.Module):
    """Wraps an :class:`Lc0Net`: planes ``(B, 16, 8, 8)`` -> (logits ``(B, 4608)``, WDL ``(B, 3)``).

    ``net`` is the part int8 conversions quantize (:mod:`engine.quant`); the plane build before it and the
    policy gather and WDL softmax after it stay fp32 / integer operations.
    """

    family = FAMILY

    def __init__(self, net: Lc0Net) -> None:
        super().__init__()
        self.net = net
        self.blocks = self.num_blocks = net.blocks_count
        self.filters = self.num_filters = net.filters
        plain, queen, castle = _policy_tables()
        self.register_buffer("plain", torch.from_numpy(plain), persistent=False)
        # the few indices whose lc0 move depends on the piece on the from-square: pawn moves to the 8th rank
        # (on rank 7's files) and the king's two-square steps from e1
        promotion = np.flatnonzero(queen != plain)
        castling = np.flatnonzero(castle != plain)
        for name, values in (("promotion_columns", promotion), ("promotion_files", promotion % 8),
                             ("promotion_plain", plain[promotion]), ("promotion_queen", queen[promotion]),
                             ("castling_columns", castling), ("castling_plain", plain[castling]),
                             ("castling_king", castle[castling])):
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(values)), persistent=False)
        start = torch.from_numpy(encode_position(chess.Board()))
        self.register_buffer("start", start, persistent=False)
        self.register_buffer("piece_order", torch.tensor(_OURS + _THEIRS), persistent=False)
        self.register_buffer("castling_order", torch.tensor(_CASTLING), persistent=False)

    def lc0_planes(self, planes: torch.Tensor) -> torch.Tensor:
        """lc0's 112 planes ``(B, 112, 8, 8)`` for azengine's 16 (the module docstring says what is missing)."""
        batch = planes.shape[0]
        pieces = planes.index_select(1, self.piece_order)  # (B, 12, 8, 8)
        at_start = (planes == self.start).flatten(1).all(dim=1)
        fill = (~at_start).to(planes.dtype)[:, None, None, None, None]
        zeros = planes.new_zeros(batch, 1, 8, 8)
        board = torch.cat([pieces, zeros], dim=1)  # one history slot: 12 piece planes, no repetition
        history = torch.cat([board[:, None], board[:, None].expand(batch, HISTORY - 1, PLANES_PER_BOARD, 8, 8) * fill],
                            dim=1).reshape(batch, HISTORY * PLANES_PER_BOARD, 8, 8)
        castling = planes.index_select(1, self.castling_order)
        ones = planes.new_ones(batch, 1, 8, 8)
        aux = torch.cat([castling, zeros, zeros, zeros, ones], dim=1)
        return torch.cat([history, aux], dim=1)  # (B, NUM_PLANES, 8, 8)

    def forward(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, 4608)`` in azengine's index and win/draw/loss probabilities ``(B, 3)`` for planes
        ``(B, 16, 8, 8)`` (the evaluator derives the value ``W - L``)."""
        policy, wdl = self.net(self.lc0_planes(planes))
        batch = planes.shape[0]
        policy = torch.cat([policy, policy.new_zeros(batch, 1)], dim=1)
        logits = policy.index_select(1, self.plain)
        pawn = planes[:, _OUR_PAWNS, 6].index_select(1, self.promotion_files) > 0.5  # (B, promotion columns)
        promotion = torch.gather(policy, 1, torch.where(pawn, self.promotion_queen, self.promotion_plain))
        king = planes[:, _OUR_KING, 0, chess.E1:chess.E1 + 1] > 0.5  # (B, 1)
        castling = torch.gather(policy, 1, torch.where(king, self.castling_king, self.castling_plain))
        logits = logits.scatter(1, self.promotion_columns.expand_as(promotion), promotion)
        logits = logits.scatter(1, self.castling_columns.expand_as(castling), castling)
        return logits, torch.softmax(wdl, dim=1)


def load_lc0_as_16_plane(path: str | Path) -> tuple[Lc0As16Plane, dict[str, Any]]:
    """Read an lc0 file into an eval-mode :class:`Lc0As16Plane` and the metadata to show for it."""
    weights = read_lc0(path)
    module = Lc0As16Plane(build_lc0_net(weights)).eval()
    return module, {"family": FAMILY, **weights.formats, **wrapper_metadata(module)}


def wrapper_metadata(module: Lc0As16Plane) -> dict[str, Any]:
    """What a file made of ``module`` (an int8 or ONNX file) says of the network in its metadata beside kind
    and sizes: the input it takes (``input_planes``: azengine's 16 planes, lc0's 112 built from them inside
    the file's graph), its squeeze-excitation width (0: none) and a description."""
    se = module.net.tower[0].se if len(module.net.tower) else None
    return {"input_planes": NUM_PLANES, "se_channels": se.fc1.out_features if se is not None else 0,
            "description": f"lc0 network, {module.blocks}x{module.filters}{' SE' if se is not None else ''}, "
                           f"112 planes filled from 16 (no history)"}
