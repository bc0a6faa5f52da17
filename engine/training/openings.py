"""Opening lines and real positions from them: ECO openings continued by Stockfish.

Used for the shipped calibration / held-out position files, for training-data generation and by
``azengine match``. Stockfish is Debian's ``stockfish`` package (``/usr/games/stockfish``).
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import chess
import chess.engine

from ..files import atomic_write
from ..positions import iter_pgn_games

ECO_PGN = Path("/usr/share/pgn-extract/eco.pgn")


def find_stockfish() -> str:
    """Path of the Stockfish binary; FileNotFoundError with an install hint when it is missing."""
    for candidate in (shutil.which("stockfish"), "/usr/games/stockfish"):
        if candidate and Path(candidate).is_file():
            return candidate
    raise FileNotFoundError("stockfish not found; install it with 'apt-get install stockfish'")


def read_opening_lines(path: str | Path = ECO_PGN) -> list[list[chess.Move]]:
    """The main line of every game in a PGN file (eco.pgn holds 2,015 opening lines)."""
    lines = []
    for game in iter_pgn_games(path):
        moves = list(game.mainline_moves())
        if moves:
            lines.append(moves)
    if not lines:
        raise ValueError(f"{path}: no games with moves")
    return lines


def sample_move(
    engine: chess.engine.SimpleEngine, board: chess.Board, nodes: int, multipv: int, temperature_cp: float,
    rng: random.Random,
) -> chess.Move:
    """A Stockfish move chosen among its ``multipv`` best by a softmax over centipawns / temperature."""
    infos = engine.analyse(board, chess.engine.Limit(nodes=nodes), multipv=multipv)
    moves, scores = [], []
    for info in infos:
        if "pv" in info and info["pv"]:
            moves.append(info["pv"][0])
            scores.append(info["score"].relative.score(mate_score=10_000))
    best = max(scores)
    weights = [math.exp((s - best) / temperature_cp) for s in scores]
    return rng.choices(moves, weights)[0]


def continued_games(
    count: int, seed: int, nodes: int = 2000, multipv: int = 3, temperature_cp: float = 40.0, max_plies: int = 160,
) -> Iterator[list[chess.Board]]:
    """Yield ``count`` games: each a random ECO opening continued by sampled Stockfish moves."""
    rng = random.Random(seed)
    lines = read_opening_lines()
    with chess.engine.SimpleEngine.popen_uci(find_stockfish()) as engine:
        engine.configure({"Threads": 1, "Hash": 16})
        for _ in range(count):
            board = chess.Board()
            positions = []
            for move in rng.choice(lines):
                board.push(move)
                positions.append(board.copy())
            while not board.is_game_over(claim_draw=True) and board.ply() < max_plies:
                board.push(sample_move(engine, board, nodes, multipv, temperature_cp, rng))
                positions.append(board.copy())
            yield [b for b in positions if not b.is_game_over()]


def main() -> None:
    """Write the shipped calibration and held-out FEN files (disjoint games, so no position is shared)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--games", type=int, default=60)
    parser.add_argument("--per-game", type=int, default=20)
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent.parent / "data")
    args = parser.parse_args()
    rng = random.Random(7)
    for name, seed in (("calibration.fen", 1), ("heldout.fen", 2)):
        fens: list[str] = []
        for game in continued_games(args.games, seed):
            fens += [b.fen() for b in rng.sample(game, min(args.per_game, len(game)))]
        atomic_write(args.out_dir / name, "\n".join(fens) + "\n")


if __name__ == "__main__":
    main()
