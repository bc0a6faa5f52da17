"""How noisy are the training labels? Stockfish relabels held-out positions, and the network is scored on both.

The default network learns Stockfish 15.1's best move at a fixed node count (3,000, MultiPV 4), and its
model card reports top-1 agreement with that stored move on the validation games. A move found by a
3,000-node search is not a fixed function of the position: the hash table carries over from the earlier
positions of the same game, and a deeper search often prefers another move. This script takes random
positions of the validation games of a shard directory and asks Stockfish again:

- at the generator's settings (``--nodes``, MultiPV 4), with a fresh hash (``ucinewgame``): how often it
  repeats its own stored label;
- at ``--deep-nodes`` (MultiPV 1): how often the stored label is the deeper search's move;

and scores the network's best legal move against the stored label, the fresh one and the deep one, and
whether it is among the stored MultiPV moves.

    python -m benchmarks.experiments.label_agreement --data data/sf [--model M] [--positions 1000] [--deep-nodes 100000]
"""

from __future__ import annotations

import argparse
import shutil
import time

import chess
import chess.engine
import numpy as np

import engine
from engine.encoding import encode_batch, move_to_index
from engine.loader import load_model
from engine.priors import legal_move_indices
from engine.quant.accuracy import evaluate_all
from engine.training.shards import list_shards, load_shards, validation_mask
from engine.training.train import VALIDATION_FRACTION


def stockfish_move_index(sf: chess.engine.SimpleEngine, board: chess.Board, nodes: int, multipv: int) -> int:
    """Policy index of Stockfish's best move at ``nodes`` nodes, searched with a fresh hash."""
    infos = sf.analyse(board, chess.engine.Limit(nodes=nodes), multipv=multipv, game=object())
    return move_to_index(board, infos[0]["pv"][0])


def network_move_indices(model: str, boards: list[chess.Board]) -> np.ndarray:
    """Policy index of the network's best legal move in each position (fp32)."""
    logits, _ = evaluate_all(load_model(model, backend="fp32", threads=1), encode_batch(boards))
    best = []
    for row, board in zip(logits, boards, strict=True):
        _, indices = legal_move_indices(board)
        best.append(indices[np.argmax(row[indices])])
    return np.array(best)


def main() -> None:
    """Relabel held-out positions and print the agreement table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/sf", help="shard directory (its validation games are used)")
    parser.add_argument("--model", default=str(engine.default_model_path()), help="fp32 model file")
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=3000, help="the generator's node count")
    parser.add_argument("--multipv", type=int, default=4, help="the generator's MultiPV")
    parser.add_argument("--deep-nodes", type=int, default=100_000)
    parser.add_argument("--stockfish", default=shutil.which("stockfish") or "/usr/games/stockfish")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    shards = list_shards(args.data)
    if not shards:
        parser.error(f"no shards in {args.data}")
    data = load_shards(shards, ("game", "policy_index", "fen"))
    rows = np.flatnonzero(validation_mask(data["game"], VALIDATION_FRACTION))
    rows = np.sort(np.random.default_rng(args.seed).choice(rows, min(args.positions, len(rows)), replace=False))
    boards = [chess.Board(fen.decode()) for fen in data["fen"][rows]]
    stored = data["policy_index"][rows].astype(np.int64)

    started = time.perf_counter()
    network = network_move_indices(args.model, boards)
    with chess.engine.SimpleEngine.popen_uci(args.stockfish) as sf:
        sf.configure({"Threads": 1, "Hash": 16})
        name = sf.id.get("name", args.stockfish)
        fresh = np.array([stockfish_move_index(sf, b, args.nodes, args.multipv) for b in boards])
        deep = np.array([stockfish_move_index(sf, b, args.deep_nodes, 1) for b in boards])
    label = stored[:, 0]
    table = [
        (f"stored label = {name} again ({args.nodes} nodes, MultiPV {args.multipv}, fresh hash)", fresh == label),
        (f"stored label = {name} at {args.deep_nodes} nodes", deep == label),
        (f"fresh {args.nodes}-node move = {args.deep_nodes}-node move", fresh == deep),
        ("network's move = stored label (the model card's top-1)", network == label),
        (f"network's move = fresh {args.nodes}-node move", network == fresh),
        (f"network's move = {args.deep_nodes}-node move", network == deep),
        (f"network's move among the stored MultiPV {args.multipv} moves", (stored == network[:, None]).any(axis=1)),
    ]
    print(f"{len(boards)} positions of the validation games of {args.data} ({len(shards)} shards), "
          f"model {args.model}, {time.perf_counter() - started:.0f} s")
    width = max(len(text) for text, _ in table)
    for text, agree in table:
        print(f"  {text.ljust(width)}  {100.0 * float(np.mean(agree)):5.1f}%")


if __name__ == "__main__":
    main()
