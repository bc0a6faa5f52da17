"""Turning policy logits into prior probabilities over a position's legal moves."""

from __future__ import annotations

import chess
import numpy as np

from .encoding import move_to_index
from .interface import AZ_INPUT, LC0_INPUT
from .nets.lc0.policy import move_to_lc0_index

#: Underpromotions share the queen promotion's policy index. Each gets the queen's logit minus this
#: value, i.e. exp(-3) ~ 5% of the queen promotion's weight, so they stay searchable but rare.
UNDERPROMOTION_LOGIT_PENALTY = 3.0


def legal_move_indices(board: chess.Board, input_format: str = AZ_INPUT) -> tuple[list[chess.Move], np.ndarray]:
    """The legal moves of ``board`` and their policy indices (int64 array, same order): azengine's 4608
    index, or for ``LC0_INPUT`` lc0's 1858 (where each underpromotion has its own)."""
    moves = list(board.legal_moves)
    index_of = move_to_lc0_index if input_format == LC0_INPUT else move_to_index
    indices = np.fromiter((index_of(board, m) for m in moves), dtype=np.int64, count=len(moves))
    return moves, indices


def masked_softmax(logits: np.ndarray, indices: np.ndarray, penalties: np.ndarray | None = None,
                   dtype: type = np.float32) -> np.ndarray:
    """Softmax of ``logits[indices] - penalties`` as ``dtype``, computed in float64 (maximum subtracted first)."""
    chosen = logits[indices].astype(np.float64)
    if penalties is not None:
        chosen = chosen - penalties
    if chosen.size == 0:
        return chosen.astype(dtype)
    chosen -= chosen.max()
    weights = np.exp(chosen)
    return (weights / weights.sum()).astype(dtype)


def move_priors(board: chess.Board, logits: np.ndarray) -> dict[chess.Move, float]:
    """Prior probability of each legal move of ``board`` from the network's ``(4608,)`` logits.

    Underpromotions get :data:`UNDERPROMOTION_LOGIT_PENALTY` subtracted from the shared logit.
    """
    moves, indices = legal_move_indices(board)
    penalties = np.array(
        [UNDERPROMOTION_LOGIT_PENALTY if m.promotion not in (None, chess.QUEEN) else 0.0 for m in moves]
    )
    probs = masked_softmax(logits, indices, penalties)
    return dict(zip(moves, probs.tolist(), strict=True))
