"""Training data from Stockfish: ECO openings continued by Stockfish, every position labelled by it.

``python -m engine.training.datagen --out data/sf --workers 1 --positions 1500000 --nodes 6000``

Each game starts from a random line of ``eco.pgn``. Positions along the opening line are labelled the
first time a worker meets them; after the line every position is analysed once with MultiPV at a fixed
node count, and that one analysis gives both the labels and the next move (sampled among the MultiPV
moves by a softmax over centipawns, so that games differ):

* value: Stockfish's WDL expectation (``UCI_ShowWDL``) mapped to [-1, 1], side to move's view, and
  the W/D/L itself (per mille) for WDL value heads;
* policy: the MultiPV moves as policy indices, best first, with their centipawn scores;
* result: the game's result for the side to move (games are adjudicated once Stockfish's win
  probability stays above a threshold).

One Stockfish process per worker, driven over raw UCI lines (``stockfish_uci``); each worker writes its
own shards atomically. Rerunning continues until the shards in ``--out`` hold ``--positions`` positions.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing as mp
import os
import queue
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import chess
import chess.engine
import chess.polyglot
import numpy as np
from tqdm import tqdm

from ..encoding import bitboard_row, move_to_index
from .openings import find_stockfish, read_opening_lines
from .shards import count_positions, list_shards, write_shard
from .stockfish_uci import StockfishLabeller
from .stopping import interrupt_on_sigterm

log = logging.getLogger(__name__)

MATE_CP = 30_000


@dataclass(frozen=True)
class GenConfig:
    """Settings of data generation (the defaults are the ones used for the shipped model's data)."""

    nodes: int = 6000  # Stockfish nodes per analysed position
    multipv: int = 4  # moves stored per position and sampled from
    temperature_cp: float = 40.0  # softmax temperature of the move choice, in centipawns
    hash_mb: int = 16
    shard_size: int = 2000  # positions per shard file
    max_plies: int = 300  # games longer than this end as draws
    adjudicate_value: float = 0.96  # |value| above this for `adjudicate_plies` plies in a row ends the game
    adjudicate_plies: int = 8
    dedup_plies: int = 30  # positions before this ply are stored once per worker run
    stockfish: str | None = None


@dataclass
class Sample:
    """One labelled position before it is written."""

    bitboards: list[int]
    black: bool
    value: float
    wdl: tuple[int, int, int]
    policy_index: list[int]
    policy_cp: list[int]
    ply: int
    fen: str
    result: int = 0


@dataclass
class Game:
    """The samples of one game and its result from white's view (+1, 0, -1)."""

    samples: list[Sample] = field(default_factory=list)
    white_result: int = 0


def centipawns(score: chess.engine.PovScore) -> int:
    """The side to move's score in centipawns, mates as +-(30000 - plies to mate)."""
    return int(score.relative.score(mate_score=MATE_CP))


def label(board: chess.Board, infos: list[chess.engine.InfoDict], multipv: int) -> Sample | None:
    """A sample of ``board`` from one MultiPV analysis; None when the analysis has no usable line."""
    lines = [info for info in infos if info.get("pv") and "score" in info]
    if not lines:
        return None
    indices: list[int] = []
    scores: list[int] = []
    for info in lines:
        index = move_to_index(board, info["pv"][0])
        if index not in indices:  # underpromotions share the queen promotion's index
            indices.append(index)
            scores.append(max(-32000, min(32000, centipawns(info["score"]))))
    indices, scores = indices[:multipv], scores[:multipv]
    pad = multipv - len(indices)
    wdl = lines[0].get("wdl") or lines[0]["score"].wdl(ply=board.ply())
    return Sample(
        bitboards=bitboard_row(board),
        black=board.turn == chess.BLACK,
        value=float(wdl.relative.expectation() * 2.0 - 1.0),
        wdl=(wdl.relative.wins, wdl.relative.draws, wdl.relative.losses),
        policy_index=indices + [-1] * pad,
        policy_cp=scores + [0] * pad,
        ply=board.ply(),
        fen=board.fen(),
    )


def choose_move(infos: list[chess.engine.InfoDict], temperature_cp: float, rng: random.Random) -> chess.Move:
    """One of the analysed moves, sampled by a softmax over centipawns / ``temperature_cp``."""
    lines = [info for info in infos if info.get("pv") and "score" in info]
    scores = [centipawns(info["score"]) for info in lines]
    best = max(scores)
    weights = [math.exp(max(-50.0, (s - best) / temperature_cp)) for s in scores]
    return rng.choices([info["pv"][0] for info in lines], weights)[0]


def finished(board: chess.Board) -> bool:
    """Game over, or a draw either side may claim (threefold repetition, 50 moves)."""
    return board.is_game_over() or board.halfmove_clock >= 100 or board.is_repetition(3)


def play_game(
    engine: StockfishLabeller, opening: list[chess.Move], cfg: GenConfig, rng: random.Random, seen: set[int],
) -> Game:
    """Play one game from ``opening`` and label its positions; ``seen`` holds the keys of early positions
    already stored by this worker (it is updated)."""
    game = Game()
    board = chess.Board()
    engine.new_game()
    streak = 0  # plies in a row with |value| above the adjudication threshold, signed for white

    def fresh(b: chess.Board) -> bool:
        if b.ply() >= cfg.dedup_plies:
            return True
        key = chess.polyglot.zobrist_hash(b)
        if key in seen:
            return False
        seen.add(key)
        return True

    for move in opening:  # the opening line: label positions this worker has not stored yet
        if fresh(board):
            infos = engine.analyse(board, cfg.nodes)
            if (sample := label(board, infos, cfg.multipv)) is not None:
                game.samples.append(sample)
        board.push(move)
    while not finished(board) and board.ply() < cfg.max_plies:
        infos = engine.analyse(board, cfg.nodes)
        sample = label(board, infos, cfg.multipv)
        if sample is None:
            board.push(rng.choice(list(board.legal_moves)))
            continue
        if fresh(board):
            game.samples.append(sample)
        white_value = sample.value if board.turn == chess.WHITE else -sample.value
        if white_value > cfg.adjudicate_value:
            streak = streak + 1 if streak > 0 else 1
        elif white_value < -cfg.adjudicate_value:
            streak = streak - 1 if streak < 0 else -1
        else:
            streak = 0
        if abs(streak) >= cfg.adjudicate_plies:
            game.white_result = 1 if streak > 0 else -1
            break
        board.push(choose_move(infos, cfg.temperature_cp, rng))
    else:
        outcome = board.outcome(claim_draw=True)
        if outcome is not None and outcome.winner is not None:
            game.white_result = 1 if outcome.winner == chess.WHITE else -1
    for sample in game.samples:
        sample.result = -game.white_result if sample.black else game.white_result
    return game


def to_arrays(samples: list[Sample], game_ids: list[int]) -> dict[str, np.ndarray]:
    """The shard arrays of ``samples`` (``game_ids[i]`` is the id of sample i's game)."""
    return {
        "bitboards": np.array([s.bitboards for s in samples], dtype=np.uint64).reshape(-1, 16),
        "black": np.array([s.black for s in samples], dtype=bool),
        "value": np.array([s.value for s in samples], dtype=np.float32),
        "wdl": np.array([s.wdl for s in samples], dtype=np.int16).reshape(-1, 3),
        "result": np.array([s.result for s in samples], dtype=np.int8),
        "policy_index": np.array([s.policy_index for s in samples], dtype=np.int16),
        "policy_cp": np.array([s.policy_cp for s in samples], dtype=np.int16),
        "game": np.array(game_ids, dtype=np.uint64),
        "ply": np.array([s.ply for s in samples], dtype=np.int16),
        "fen": np.array([s.fen.encode() for s in samples], dtype="S"),
    }


def worker(index: int, quota: int, out: Path, prefix: str, cfg: GenConfig, seed: str, progress: mp.Queue) -> None:
    """Generate ``quota`` positions into shards ``<out>/<prefix>-w<index>-<n>.npz``; report counts on
    ``progress``."""
    rng = random.Random(f"{seed}-{index}")
    openings = read_opening_lines()
    seen: set[int] = set()
    samples: list[Sample] = []
    game_ids: list[int] = []
    written = 0
    shard = 0

    def flush() -> None:
        nonlocal samples, game_ids, written, shard
        if samples:
            write_shard(out / f"{prefix}-w{index:02d}-{shard:05d}.npz", to_arrays(samples, game_ids))
            written += len(samples)
            shard += 1
            samples, game_ids = [], []

    interrupt_on_sigterm()
    try:
        with StockfishLabeller(cfg.stockfish or find_stockfish(), cfg.hash_mb, cfg.multipv) as engine:
            while written + len(samples) < quota:
                game = play_game(engine, rng.choice(openings), cfg, rng, seen)
                new = game.samples[: quota - written - len(samples)]
                game_id = rng.getrandbits(63)
                samples += new
                game_ids += [game_id] * len(new)
                progress.put(len(new))
                if len(samples) >= cfg.shard_size:
                    flush()
    except KeyboardInterrupt:
        pass  # stopped (SIGTERM from the parent, or Ctrl-C): keep the finished games
    flush()


def generate(out: str | Path, positions: int, workers: int = 1, cfg: GenConfig | None = None,
             seed: int | None = None, progress_bar: bool = True) -> int:
    """Generate data into ``out`` until its shards hold ``positions`` positions; returns how many were added.

    With ``seed`` the games are reproducible (for a given number of positions already on disk).
    """
    cfg = cfg or GenConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    have = count_positions(out)
    remaining = positions - have
    if remaining <= 0:
        log.info("%s already holds %d positions (asked for %d)", out, have, positions)
        return 0
    workers = max(1, min(workers, remaining))
    prefix = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{len(list_shards(out)):05d}"
    run_seed = f"{seed}-{have}" if seed is not None else os.urandom(16).hex()
    quotas = [remaining // workers + (1 if i < remaining % workers else 0) for i in range(workers)]
    log.info("generating %d positions into %s with %d workers (%d on disk), %s", remaining, out, workers, have, cfg)
    ctx = mp.get_context("spawn")
    progress: mp.Queue = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(i, q, out, prefix, cfg, run_seed, progress), daemon=True)
        for i, q in enumerate(quotas)
    ]
    for proc in procs:
        proc.start()
    added = 0
    bar = tqdm(total=positions, initial=have, unit="pos", smoothing=0.05, disable=not progress_bar)
    try:
        while any(p.is_alive() for p in procs) or not progress.empty():
            try:
                n = progress.get(timeout=0.5)
            except queue.Empty:
                continue
            added += n
            bar.update(n)
    finally:
        bar.close()
        for proc in procs:  # on an interrupt, ask the workers to write what they have and stop
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise RuntimeError(f"datagen worker(s) failed with exit codes {failed}")
    return added


def main(argv: list[str] | None = None) -> None:
    """Command line: generate Stockfish-labelled training shards."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = GenConfig()
    parser.add_argument("--out", type=Path, required=True, help="directory of the shards")
    parser.add_argument("--positions", type=int, required=True, help="total positions wanted on disk")
    parser.add_argument("--workers", type=int, default=1, help="processes, one Stockfish each")
    parser.add_argument("--nodes", type=int, default=defaults.nodes, help="Stockfish nodes per position")
    parser.add_argument("--multipv", type=int, default=defaults.multipv, help="moves stored and sampled from")
    parser.add_argument("--temperature-cp", type=float, default=defaults.temperature_cp,
                        help="softmax temperature of the move choice (centipawns)")
    parser.add_argument("--shard-size", type=int, default=defaults.shard_size, help="positions per shard")
    parser.add_argument("--max-plies", type=int, default=defaults.max_plies)
    parser.add_argument("--stockfish", default=None, help="Stockfish binary (default: found on PATH)")
    parser.add_argument("--seed", type=int, default=None, help="reproducible games (default: random)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    cfg = GenConfig(nodes=args.nodes, multipv=args.multipv, temperature_cp=args.temperature_cp,
                    shard_size=args.shard_size, max_plies=args.max_plies, stockfish=args.stockfish)
    start = time.perf_counter()
    interrupt_on_sigterm()
    try:
        added = generate(args.out, args.positions, args.workers, cfg, args.seed, not args.no_progress)
    except KeyboardInterrupt:
        log.info("stopped; %s holds %d positions (run the same command to continue)", args.out,
                 count_positions(args.out))
        sys.exit(130)
    elapsed = time.perf_counter() - start
    log.info("added %d positions in %.0f s (%.1f positions/s); %s holds %d", added, elapsed,
             added / max(elapsed, 1e-9), args.out, count_positions(args.out))


if __name__ == "__main__":
    main()
