"""How often a network's move is Stockfish's deep move, on held-out positions: raw policy and after a search.

The positions are the first ``--positions`` of ``engine/data/heldout.fen`` (never used in training),
labelled once by Stockfish at ``--depth`` (MultiPV 1, fresh hash per position, one thread) into
``benchmarks/data/heldout_depth<D>.epd`` (``bm`` the best move, ``ce`` its centipawns for the side to
move); later runs read that file. For each model: the share of positions where the best legal move of
the raw policy (one network call) is Stockfish's, over all positions and over the balanced ones
(``|ce| <= 300``), and with ``--nodes N`` the same for azengine's move after an N-node search.

    python -m benchmarks.policy_top1 --model engine/models/azengine_default.pt --model runs/v8/model.pt \\
        [--nodes 800] [--positions 600] [--depth 16]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import chess
import chess.engine
import numpy as np

from benchmarks.common import searched_moves
from engine.files import atomic_write
from engine.inputs import encode_for_format
from engine.interface import input_format_of
from engine.loader import load_model
from engine.priors import legal_move_indices
from engine.quant.accuracy import evaluate_all

HELDOUT = Path(__file__).resolve().parents[1] / "engine" / "data" / "heldout.fen"
LABELS_DIR = Path(__file__).resolve().parent / "data"
#: Positions whose deep evaluation is within this many centipawns count as balanced.
BALANCED_CP = 300


def labels_path(depth: int) -> Path:
    """Where the labels of ``depth`` are kept."""
    return LABELS_DIR / f"heldout_depth{depth}.epd"


def label_positions(fens: list[str], depth: int, stockfish: str) -> str:
    """EPD lines with Stockfish's best move (``bm``) and score (``ce``) at ``depth`` for each FEN."""
    lines = []
    with chess.engine.SimpleEngine.popen_uci(stockfish) as sf:
        sf.configure({"Threads": 1, "Hash": 64})
        for n, fen in enumerate(fens, 1):
            board = chess.Board(fen)
            info = sf.analyse(board, chess.engine.Limit(depth=depth), game=object())
            score = info["score"].pov(board.turn).score(mate_score=100_000)
            lines.append(board.epd(bm=info["pv"][0], ce=score, acd=depth))
            if n % 50 == 0:
                sys.stderr.write(f"labelled {n}/{len(fens)}\n")
    return "\n".join(lines) + "\n"


def read_labels(path: Path) -> list[tuple[chess.Board, chess.Move, int]]:
    """(position, best move, centipawns) of each line of an EPD labels file."""
    labelled = []
    for line in path.read_text().splitlines():
        if line.strip():
            board, ops = chess.Board.from_epd(line)
            labelled.append((board, ops["bm"][0], int(ops["ce"])))
    return labelled


def raw_policy_moves(model: str, boards: list[chess.Board]) -> list[chess.Move]:
    """The best legal move of the model's raw policy in each position (fp32 unless the file is int8), from the
    planes its input format takes (azengine's 16 or lc0's 112)."""
    evaluator = load_model(model, threads=1)
    input_format = input_format_of(evaluator)
    logits, _ = evaluate_all(evaluator, encode_for_format(input_format, boards))
    moves = []
    for row, board in zip(logits, boards, strict=True):
        legal, indices = legal_move_indices(board, input_format)
        moves.append(legal[int(np.argmax(row[indices]))])
    return moves


def agreement(moves: list[chess.Move], best: list[chess.Move], balanced: np.ndarray) -> str:
    """``all% / balanced%`` of the moves equal to the labels."""
    same = np.array([m == b for m, b in zip(moves, best, strict=True)])
    return f"{100 * same.mean():5.1f}% / {100 * same[balanced].mean():5.1f}%"


def main() -> None:
    """Label the positions if needed, then print each model's agreement with Stockfish."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="model file (give several to compare)")
    parser.add_argument("--positions", type=int, default=600)
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--nodes", type=int, default=0, help="also score the move after a search of N nodes")
    parser.add_argument("--stockfish", default=shutil.which("stockfish") or "/usr/games/stockfish")
    args = parser.parse_args()

    path = labels_path(args.depth)
    labelled = read_labels(path) if path.exists() else []
    if len(labelled) < args.positions:
        fens = [line for line in HELDOUT.read_text().splitlines() if line.strip()][: args.positions]
        atomic_write(path, label_positions(fens, args.depth, args.stockfish))
        labelled = read_labels(path)
    labelled = labelled[: args.positions]
    boards = [board for board, _, _ in labelled]
    best = [move for _, move, _ in labelled]
    balanced = np.array([abs(cp) <= BALANCED_CP for _, _, cp in labelled])
    print(f"{len(boards)} positions of {HELDOUT.name} ({int(balanced.sum())} balanced, |ce| <= {BALANCED_CP}), "
          f"labels: Stockfish depth {args.depth} ({path.name}); agreement all / balanced")
    for model in args.model:
        line = f"  {model}: raw policy {agreement(raw_policy_moves(model, boards), best, balanced)}"
        if args.nodes:
            searched = searched_moves({"WeightsFile": model}, boards, args.nodes)
            line += f", {args.nodes} nodes {agreement(searched, best, balanced)}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
