"""How far a quantized evaluator is from the fp32 one, on held-out positions."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import chess
import numpy as np

from ..inputs import encode_for
from ..interface import Evaluator, input_format_of
from ..priors import legal_move_indices, masked_softmax


@dataclass
class Accuracy:
    """Agreement of an evaluator with a reference (fp32) on the same positions."""

    positions: int
    value_rmse: float
    value_max_error: float
    policy_rmse: float  # RMSE of the move probabilities over legal moves
    policy_kl: float  # mean KL(reference || other) over legal moves, in nats
    top1_agreement: float  # share of positions whose most probable legal move is the same

    def to_dict(self) -> dict[str, float]:
        """Plain dict for JSON output."""
        return asdict(self)


def evaluate_all(evaluator: Evaluator, planes: np.ndarray, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Logits and values of all ``planes``, evaluated ``batch`` positions at a time."""
    logits, values = [], []
    for start in range(0, len(planes), batch):
        lg, v = evaluator.evaluate(planes[start:start + batch])
        logits.append(lg)
        values.append(v)
    return np.concatenate(logits), np.concatenate(values)


def compare(reference: Evaluator, other: Evaluator, boards: list[chess.Board]) -> Accuracy:
    """Value and policy agreement of ``other`` with ``reference`` on ``boards`` (legal moves only), each
    evaluator given the planes of its ``input_format`` (both must give the same policy index)."""
    input_format = input_format_of(reference)
    if input_format_of(other) != input_format:
        raise ValueError(f"cannot compare a {input_format} evaluator with a {input_format_of(other)} one")
    planes = encode_for(reference, boards)
    ref_logits, ref_values = evaluate_all(reference, planes)
    oth_logits, oth_values = evaluate_all(other, planes)
    value_err = oth_values.astype(np.float64) - ref_values
    sq_err, kl, same = 0.0, 0.0, 0
    moves_seen = 0
    for i, board in enumerate(boards):
        _, idx = legal_move_indices(board, input_format)
        idx = np.unique(idx)  # azengine's promotions share an index: count it once
        p = masked_softmax(ref_logits[i], idx, dtype=np.float64)
        q = masked_softmax(oth_logits[i], idx, dtype=np.float64)
        sq_err += float(((p - q) ** 2).sum())
        moves_seen += len(idx)
        kl += float((p * (np.log(np.maximum(p, 1e-12)) - np.log(np.maximum(q, 1e-12)))).sum())
        same += int(np.argmax(p) == np.argmax(q))
    n = len(boards)
    return Accuracy(
        positions=n,
        value_rmse=float(np.sqrt(np.mean(value_err ** 2))),
        value_max_error=float(np.abs(value_err).max()),
        policy_rmse=float(np.sqrt(sq_err / max(1, moves_seen))),
        policy_kl=kl / n,
        top1_agreement=same / n,
    )
