"""Training data from games already played: every position of PGN files labelled by Stockfish.

``python -m engine.training.relabel --pgn docs/study --out data/own --workers 2 --nodes 3000``

The positions are those the engine's own matches reached (``docs/study`` holds them), not the quiet
Stockfish-against-Stockfish positions of ``datagen``: the positions it has to play well in. Each distinct
position (by Zobrist hash) is kept once, except those of the built-in held-out and calibration sets,
which stay unseen. The labels are ``datagen``'s: one MultiPV analysis at a fixed node count gives the
value, the WDL and the policy moves; the result is the game's, for the side to move. Positions of one
game share a game id, so the trainer's validation split keeps whole games apart.

The positions are cut into numbered chunks in a fixed order, one shard each; a worker labels the chunks
whose shard is missing, so rerunning the same command continues an interrupted run.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import logging
import multiprocessing as mp
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import chess
import chess.pgn
import chess.polyglot

from ..bundled import CALIBRATION_FILE, HELDOUT_FILE, data_path
from ..positions import read_fens
from .datagen import GenConfig, Sample, label, to_arrays
from .openings import find_stockfish
from .shards import write_shard
from .stockfish_uci import StockfishLabeller
from .stopping import interrupt_on_sigterm

log = logging.getLogger(__name__)

RESULT_FOR_WHITE = {"1-0": 1, "0-1": -1, "1/2-1/2": 0}


@dataclass(frozen=True)
class Position:
    """One position to label: its FEN, its game's id and the game's result from white's view."""

    fen: str
    game_id: int
    white_result: int


def pgn_files(paths: list[Path]) -> list[Path]:
    """The ``.pgn`` and ``.pgn.gz`` files of ``paths`` (folders are searched, not recursively), sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += [p for p in path.iterdir() if p.name.endswith((".pgn", ".pgn.gz"))]
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such PGN file or folder: {path}")
    return sorted(found)


def _open_pgn(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _position_key(board: chess.Board) -> int:
    return chess.polyglot.zobrist_hash(board)


def game_positions(paths: list[Path], excluded: set[int]) -> Iterator[Position]:
    """Every distinct position of the games in ``paths`` (terminal ones and ``excluded`` keys left out),
    in file order."""
    seen = set(excluded)
    for path in paths:
        with _open_pgn(path) as handle:
            number = 0
            while (game := chess.pgn.read_game(handle)) is not None:
                number += 1
                digest = hashlib.blake2b(f"{path.name}:{number}".encode(), digest_size=8).digest()
                game_id = int.from_bytes(digest, "little") >> 1
                white_result = RESULT_FOR_WHITE.get(game.headers.get("Result", "*"), 0)
                board = game.board()
                for move in [None, *game.mainline_moves()]:
                    if move is not None:
                        board.push(move)
                    key = _position_key(board)
                    if key in seen or board.is_game_over():
                        continue
                    seen.add(key)
                    yield Position(board.fen(), game_id, white_result)


def excluded_keys() -> set[int]:
    """Zobrist keys of the built-in held-out and calibration positions."""
    return {_position_key(board) for name in (HELDOUT_FILE, CALIBRATION_FILE) for board in read_fens(data_path(name))}


def chunk_path(out: Path, chunk: int) -> Path:
    """The shard of chunk number ``chunk``."""
    return out / f"games-{chunk:06d}.npz"


def label_chunk(engine: StockfishLabeller, positions: list[Position], cfg: GenConfig) -> tuple[list[Sample], list[int]]:
    """Samples and game ids of ``positions`` (a position Stockfish gives no line for is dropped)."""
    samples: list[Sample] = []
    game_ids: list[int] = []
    previous_game = None
    for position in positions:
        if position.game_id != previous_game:
            engine.new_game()
            previous_game = position.game_id
        board = chess.Board(position.fen)
        sample = label(board, engine.analyse(board, cfg.nodes), cfg.multipv)
        if sample is None:
            continue
        sample.result = position.white_result if board.turn == chess.WHITE else -position.white_result
        samples.append(sample)
        game_ids.append(position.game_id)
    return samples, game_ids


def worker(chunks: dict[int, list[Position]], out: Path, cfg: GenConfig) -> None:
    """Label ``chunks`` (chunk number -> its positions), one shard each (none for a chunk in which no
    position got a line, which a rerun tries again)."""
    interrupt_on_sigterm()
    try:
        with StockfishLabeller(cfg.stockfish or find_stockfish(), cfg.hash_mb, cfg.multipv) as engine:
            for number, positions in sorted(chunks.items()):
                samples, game_ids = label_chunk(engine, positions, cfg)
                if samples:
                    write_shard(chunk_path(out, number), to_arrays(samples, game_ids))
                else:
                    log.warning("chunk %d: Stockfish gave no line for any of its positions", number)
    except KeyboardInterrupt:
        pass  # stopped: the finished shards stay, the chunk in hand is labelled again next run


def relabel(pgn: list[Path], out: Path, workers: int, cfg: GenConfig, limit: int | None = None) -> int:
    """Label the positions of the games in ``pgn`` into shards under ``out``; returns the number of chunks
    (shards) the positions make. ``limit`` keeps only the first positions."""
    positions = list(game_positions(pgn_files(pgn), excluded_keys()))[:limit]
    chunks = [positions[i:i + cfg.shard_size] for i in range(0, len(positions), cfg.shard_size)]
    out.mkdir(parents=True, exist_ok=True)
    todo = [n for n in range(len(chunks)) if not chunk_path(out, n).exists()]
    log.info("%d positions in %d chunks, %d to label into %s with %d workers (%d nodes)",
             len(positions), len(chunks), len(todo), out, workers, cfg.nodes)
    shares = [{n: chunks[n] for n in todo[i::workers]} for i in range(workers)]  # each worker gets its own
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker, args=(share, out, cfg), daemon=True) for share in shares if share]
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join()
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=60)
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise RuntimeError(f"relabel worker(s) failed with exit codes {failed}")
    return len(chunks)


def main(argv: list[str] | None = None) -> None:
    """Command line: label the positions of played games with Stockfish."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = GenConfig()
    parser.add_argument("--pgn", type=Path, nargs="+", required=True, help="PGN files (.pgn, .pgn.gz) or folders")
    parser.add_argument("--out", type=Path, required=True, help="directory of the shards")
    parser.add_argument("--workers", type=int, default=1, help="processes, one Stockfish each")
    parser.add_argument("--nodes", type=int, default=defaults.nodes, help="Stockfish nodes per position")
    parser.add_argument("--multipv", type=int, default=defaults.multipv, help="moves stored per position")
    parser.add_argument("--shard-size", type=int, default=defaults.shard_size, help="positions per shard")
    parser.add_argument("--limit", type=int, default=None, help="label only the first N positions")
    parser.add_argument("--stockfish", default=None, help="Stockfish binary (default: found on PATH)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    cfg = GenConfig(nodes=args.nodes, multipv=args.multipv, shard_size=args.shard_size, stockfish=args.stockfish)
    start = time.perf_counter()
    interrupt_on_sigterm()
    try:
        chunks = relabel(args.pgn, args.out, max(1, args.workers), cfg, args.limit)
    except FileNotFoundError as exc:
        sys.exit(f"relabel: {exc}")
    except KeyboardInterrupt:
        log.info("stopped; run the same command to continue")
        sys.exit(130)
    done = sum(chunk_path(args.out, n).exists() for n in range(chunks))
    log.info("%d of %d shards in %s after %.0f s", done, chunks, args.out, time.perf_counter() - start)


if __name__ == "__main__":
    main()
