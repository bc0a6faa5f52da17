"""What a search reports from its tree: the root's moves ranked, and each line's score, W/D/L and PV."""

from __future__ import annotations

import random

import chess
import numpy as np

from engine.interface import wdl_per_mille

from . import _mcts
from .types import PvLine, Score, SearchInfo, SearchParams, wdl_from_q

#: Longest principal variation reported.
MAX_PV = 64


def ranked_root(tree: _mcts.Tree) -> list[_mcts.EdgeStats]:
    """Root edges best first: proven wins (shortest), then visits, then Q; proven losses last."""

    def rank(edge: _mcts.EdgeStats) -> tuple:
        n, mate = edge.visits, edge.child_mate
        if mate < 0:  # the child is mated: we win in -mate plies
            return (2, mate, 0, 0.0)
        if mate > 0:  # the child mates: we lose; prefer the longest loss
            return (0, mate, n, 0.0)
        return (1, n, edge.value_sum / n if n else -2.0, edge.prior)

    return sorted(tree.root_edges(), key=rank, reverse=True)


def principal_variation(tree: _mcts.Tree, first_code: int) -> list[chess.Move]:
    """The root move ``first_code`` and, below it, the most visited move of each node."""
    moves = [_mcts.decode_move(first_code)]
    node = tree.child_of(0, first_code)
    while node >= 0 and len(moves) < MAX_PV:
        best = tree.best_child_move(node)
        if best.move < 0:
            break
        node = best.child
        moves.append(_mcts.decode_move(best.move))
    return moves


def pv_line(tree: _mcts.Tree, rank: int, edge: _mcts.EdgeStats, wdl_network: bool) -> PvLine:
    """The line of root move ``edge``: its score (mate when proven), Q, W/D/L and PV.

    With a WDL network (``wdl_network``) the W/D/L is the network's own draw share backed up through the
    tree beside Q; otherwise it is derived from Q (:func:`search.types.wdl_from_q`).
    """
    n, mate = edge.visits, edge.child_mate
    q = edge.value_sum / n if n else 0.0
    if mate < 0:
        score = Score.from_mate_plies(-mate)
        q = 1.0
    elif mate > 0:
        score = Score.from_mate_plies(-mate)
        q = -1.0
    else:
        score = Score.from_q(q)
    if wdl_network and n and not mate:
        draw = edge.draw_sum / n
        wdl = wdl_per_mille(np.array([(1.0 + q - draw) / 2.0, draw, (1.0 - q - draw) / 2.0]).clip(0.0, 1.0))
    else:
        wdl = wdl_from_q(q)
    return PvLine(rank, score, q, wdl, principal_variation(tree, edge.move), n)


def choose_move(tree: _mcts.Tree, board: chess.Board, info: SearchInfo, params: SearchParams,
                rng: random.Random) -> tuple[chess.Move | None, chess.Move | None]:
    """The move to play and the one to ponder on.

    The best line's move, except in the first ``temp_cutoff_move`` moves with ``temperature`` > 0: then a
    move drawn from ``rng`` with weight visits^(1/T) among the visited moves that do not lose by force.
    """
    if not info.lines:
        return None, None
    best_line = info.lines[0]
    best = best_line.pv[0]
    if params.temperature > 0 and board.fullmove_number <= params.temp_cutoff_move and best_line.score.mate is None:
        candidates = [s for s in info.stats if s.visits > 0 and s.mate_plies >= 0]
        if candidates:
            weights = [s.visits ** (1.0 / params.temperature) for s in candidates]
            best = rng.choices([s.move for s in candidates], weights)[0]
    if best == best_line.pv[0] and len(best_line.pv) > 1:
        return best, best_line.pv[1]
    child = tree.child_of(0, _mcts.encode_move(best))
    reply = tree.best_child_move(child).move if child >= 0 else -1
    return best, _mcts.decode_move(reply) if reply >= 0 else None
