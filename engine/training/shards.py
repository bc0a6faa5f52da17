"""Training-data shards: compact ``.npz`` files of labelled positions.

One shard holds whole games (its last game may be cut short). Arrays, one row per position:

=============  ==============  ==========================================================================
key            dtype / shape   meaning
=============  ==============  ==========================================================================
bitboards      uint64 (N, 16)  ``engine.encoding.bitboard_row`` (before the black-to-move flip)
black          bool (N,)       black to move: the row is flipped when expanded to planes
value          float32 (N,)    Stockfish's WDL expectation * 2 - 1, side to move's view
wdl            int16 (N, 3)    Stockfish's win/draw/loss per mille, side to move
result         int8 (N,)       the game's result for the side to move: 1 win, 0 draw, -1 loss
policy_index   int16 (N, K)    policy indices of Stockfish's MultiPV moves, best first; -1 pads
policy_cp      int16 (N, K)    their scores in centipawns (mates as +-(30000 - plies)), side to move
game           uint64 (N,)     random id of the game the position comes from (train/validation split)
ply            int16 (N,)      ply of the position in its game
fen            bytes (N,)      the position's FEN, for tests and debugging
=============  ==============  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ..encoding import bitboards_to_planes
from ..files import atomic_output

KEYS = ("bitboards", "black", "value", "wdl", "result", "policy_index", "policy_cp", "game", "ply", "fen")
#: Arrays the trainer needs (the FENs stay on disk unless asked for).
TRAIN_KEYS = ("bitboards", "black", "value", "wdl", "result", "policy_index", "policy_cp", "game")


def list_shards(directory: str | Path) -> list[Path]:
    """The finished shard files in ``directory``, sorted by name (temporary files are not listed)."""
    path = Path(directory)
    return sorted(path.glob("*.npz")) if path.is_dir() else []


def write_shard(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically: a compressed ``.npz`` under a temporary name, then renamed."""
    with atomic_output(path) as handle:
        np.savez_compressed(handle, **{key: arrays[key] for key in KEYS})


def shard_length(path: str | Path) -> int:
    """Number of positions in a shard (reads only its ``value`` array)."""
    with np.load(path, allow_pickle=False) as data:
        return int(data["value"].shape[0])


def count_positions(directory: str | Path) -> int:
    """Total number of positions in the shards of ``directory``."""
    return sum(shard_length(p) for p in list_shards(directory))


def load_shards(paths: Iterable[str | Path], keys: Iterable[str] = TRAIN_KEYS) -> dict[str, np.ndarray]:
    """Concatenate the arrays ``keys`` of the shards ``paths`` (no pickles are read)."""
    keys = tuple(keys)
    parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for path in paths:
        with np.load(path, allow_pickle=False) as data:
            for key in keys:
                parts[key].append(data[key])
    if not parts[keys[0]]:
        raise ValueError("no shards to load")
    return {key: np.concatenate(arrays) for key, arrays in parts.items()}


def expand_planes(bitboards: np.ndarray, black: np.ndarray) -> np.ndarray:
    """Float32 planes ``(B, 16, 8, 8)`` of stored rows (the input arrays are left unchanged)."""
    return bitboards_to_planes(np.array(bitboards, dtype=np.uint64, copy=True), np.asarray(black, dtype=bool))


def soft_policy(policy_index: np.ndarray, policy_cp: np.ndarray, temperature_cp: float) -> np.ndarray:
    """Target probabilities ``(N, K)`` over the stored MultiPV moves: softmax of centipawns / temperature.

    Padding (index -1) gets probability 0. ``temperature_cp <= 0`` puts all weight on the best move.
    """
    valid = policy_index >= 0
    if temperature_cp <= 0:
        probs = np.zeros(policy_index.shape, dtype=np.float32)
        probs[:, 0] = 1.0
        return probs
    cp = policy_cp.astype(np.float64)
    best = np.where(valid, cp, -np.inf).max(axis=1, keepdims=True)
    weights = np.where(valid, np.exp(np.clip((cp - best) / temperature_cp, -50.0, 0.0)), 0.0)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def validation_mask(game: np.ndarray, fraction: float) -> np.ndarray:
    """Which rows belong to the validation split: a fixed hash of the game id, so whole games stay together
    and the split is the same on every run and resume."""
    with np.errstate(over="ignore"):
        z = game.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(1_000_000)).astype(np.int64) < int(round(fraction * 1_000_000))
