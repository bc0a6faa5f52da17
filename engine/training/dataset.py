"""Training and validation sets in RAM, read from datagen shards (:mod:`engine.training.shards`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import chess
import numpy as np
import torch

from ..priors import legal_move_indices
from .shards import TRAIN_KEYS, expand_planes, load_shards, soft_policy, validation_mask

#: The shard array of Stockfish's win/draw/loss per mille (shards made before it lack it).
WDL_KEY = "wdl"


class MissingWdlError(ValueError):
    """Shards without Stockfish's WDL labels, asked for by a network with a WDL head."""


@dataclass
class Dataset:
    """Positions in RAM, compact: planes are expanded per batch."""

    bitboards: np.ndarray  # (N, 16) uint64
    black: np.ndarray  # (N,) bool
    value: np.ndarray  # (N,) float32 target in [-1, 1]
    policy_index: np.ndarray  # (N, K) int64, padding -1
    policy_prob: np.ndarray  # (N, K) float32
    legal: np.ndarray | None = None  # (N, L) int64 legal policy indices, padding -1 (validation only)
    wdl: np.ndarray | None = None  # (N, 3) float32 win/draw/loss target probabilities (side to move)

    def __len__(self) -> int:
        return len(self.value)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                               torch.Tensor | None]:
        """Planes, value targets, policy indices (padding -> 0), their probabilities and the WDL targets
        (None when the set has none) of ``rows``."""
        planes = torch.from_numpy(expand_planes(self.bitboards[rows], self.black[rows]))
        index = torch.from_numpy(np.maximum(self.policy_index[rows], 0))
        wdl = torch.from_numpy(self.wdl[rows]) if self.wdl is not None else None
        return planes, torch.from_numpy(self.value[rows]), index, torch.from_numpy(self.policy_prob[rows]), wdl


def legal_table(fens: np.ndarray) -> np.ndarray:
    """Legal-move policy indices of each FEN, padded with -1 to a rectangle ``(N, max legal moves)``."""
    lists = [legal_move_indices(chess.Board(fen.decode()))[1] for fen in fens]
    table = np.full((len(lists), max((len(x) for x in lists), default=1)), -1, dtype=np.int64)
    for row, indices in enumerate(lists):
        table[row, : len(indices)] = indices
    return table


def shards_without_wdl(shards: list[Path]) -> list[Path]:
    """The shards that hold no WDL labels (made before datagen wrote them)."""
    missing = []
    for path in shards:
        with np.load(path, allow_pickle=False) as data:
            if WDL_KEY not in data.files:
                missing.append(path)
    return missing


def wdl_target(wdl_per_mille: np.ndarray, result: np.ndarray, result_weight: float) -> np.ndarray:
    """Win/draw/loss target probabilities ``(N, 3)``: ``(1 - w)`` * Stockfish's WDL (per mille, each row
    normalised to sum 1) + ``w`` * the game result as one-hot."""
    sf = wdl_per_mille.astype(np.float64)
    sf /= np.maximum(sf.sum(axis=1, keepdims=True), 1.0)
    outcome = np.zeros_like(sf)
    outcome[np.arange(len(result)), 1 - result.astype(np.int64)] = 1.0  # result 1 -> win, 0 draw, -1 loss
    return ((1.0 - result_weight) * sf + result_weight * outcome).astype(np.float32)


def load_dataset(shards: list[Path], val_fraction: float, policy_temperature_cp: float, result_weight: float,
                 max_positions: int | None = None, need_wdl: bool = False) -> tuple[Dataset, Dataset]:
    """Training and validation sets from ``shards`` (value target = (1-w) * Stockfish + w * game result; the
    WDL target likewise, when every shard has WDL labels).

    ``need_wdl``: :class:`MissingWdlError` naming the shards without WDL labels, instead of sets without
    WDL targets.
    """
    missing = shards_without_wdl(shards)
    if missing and need_wdl:
        raise MissingWdlError(f"{len(missing)} of {len(shards)} shards have no '{WDL_KEY}' array (Stockfish's "
                              f"win/draw/loss, written by datagen since it has them), e.g. {missing[0]}; a network "
                              f"with a WDL head trains on shards that have it")
    keys = tuple(k for k in TRAIN_KEYS if k != WDL_KEY or not missing) + ("fen",)
    data = load_shards(shards, keys)
    if max_positions is not None:
        data = {key: array[:max_positions] for key, array in data.items()}
    value = ((1.0 - result_weight) * data["value"] + result_weight * data["result"]).astype(np.float32)
    wdl = wdl_target(data[WDL_KEY], data["result"], result_weight) if WDL_KEY in data else None
    prob = soft_policy(data["policy_index"], data["policy_cp"], policy_temperature_cp)
    val = validation_mask(data["game"], val_fraction)

    def subset(mask: np.ndarray, with_legal: bool) -> Dataset:
        return Dataset(data["bitboards"][mask], data["black"][mask], value[mask],
                       data["policy_index"][mask].astype(np.int64), prob[mask],
                       legal_table(data["fen"][mask]) if with_legal else None,
                       wdl[mask] if wdl is not None else None)

    return subset(~val, False), subset(val, True)
