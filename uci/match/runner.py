"""Running a match: the game pairs, worker threads with their own engines, the tally, SPRT stops and the PGN file."""

from __future__ import annotations

import contextlib
import datetime
import queue
import random
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .adjudication import Adjudication
from .engines import EngineSpec, Player
from .errors import MatchError
from .game import GameRecord, play_game
from .limits import GameLimits
from .openings import Opening, opening_schedule
from .results import MatchResult
from .statistics import Sprt, format_sprt_line


@dataclass
class MatchConfig:
    """Everything one match needs."""

    engines: tuple[EngineSpec, EngineSpec]
    openings: list[Opening]
    limits: GameLimits
    games: int = 2
    concurrency: int = 1
    adjudication: Adjudication = field(default_factory=Adjudication)
    opening_order: str = "random"
    seed: int = 0
    sprt: Sprt | None = None
    pgn_path: Path | None = None
    event: str = "azengine match"
    show_engine_stderr: bool = False
    openings_source: str = ""
    label: str = ""  # the study, with --quantization

    @property
    def variant(self) -> str:
        """``chess960`` when the openings are Chess960 positions (the engines then need ``UCI_Chess960``)."""
        return "chess960" if any(opening.chess960 for opening in self.openings) else "standard"


@dataclass
class _Shared:
    """What the workers of one match share: the job queue, the tally (under the lock) and the stop flags."""

    config: MatchConfig
    result: MatchResult
    jobs: queue.Queue
    reports: queue.Queue  # ("game", record, progress text) | ("error", message) | ("done", None)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)  # start no more games
    abort: threading.Event = field(default_factory=threading.Event)  # interrupted: drop the games in flight


def _count(shared: _Shared, record: GameRecord) -> str:
    """Add a finished game to the tally, stop the match when the SPRT decided; the progress text."""
    result, sprt = shared.result, shared.config.sprt
    with shared.lock:
        result.add(record)
        text = (f"Finished game {result.games} ({record.white} vs {record.black}): {record.result} "
                f"{{{record.detail}}}\n{result.score_line()}\n")
        if sprt is not None:
            text += format_sprt_line(result.llr, sprt, result.decision) + "\n"
        if result.decision is not None and not shared.stop.is_set():
            result.stopped = f"SPRT: {result.decision} accepted"
            shared.stop.set()
    return text


def _worker(shared: _Shared, players: tuple[Player, Player]) -> None:
    config = shared.config
    first, second = players
    try:
        while not shared.stop.is_set():
            try:
                pair, index, opening = shared.jobs.get_nowait()
            except queue.Empty:
                break
            white, black = (first, second) if index == 0 else (second, first)
            white.ensure_started()
            black.ensure_started()
            headers = {"Event": config.event, "Site": "?", "Date": datetime.date.today().strftime("%Y.%m.%d"),
                       "Round": f"{pair}.{index + 1}"}
            record = play_game(white, black, opening, config.limits, config.adjudication,
                               f"{id(shared)}:{pair}.{index}", headers)
            if shared.abort.is_set():
                break  # engines killed by Ctrl-C: not a real result
            record.pair, record.index = pair, index
            shared.reports.put(("game", record, _count(shared, record)))
    except MatchError as exc:
        shared.reports.put(("error", str(exc), ""))
    except Exception as exc:  # noqa: BLE001 - reported by the main thread, which ends the match
        shared.reports.put(("error", f"{type(exc).__name__}: {exc}", ""))
    finally:
        for player in players:
            with contextlib.suppress(Exception):
                player.close()
        shared.reports.put(("done", None, ""))


def run_match(config: MatchConfig, progress: TextIO | None = None) -> MatchResult:
    """Play the match; progress lines go to ``progress`` (stderr by default). MatchError if an engine cannot start.

    The first worker's engines are started before any game, so that a bad command or option fails at once.
    With an SPRT, no game starts after the decision; games already running are played out and counted.
    """
    progress = sys.stderr if progress is None else progress
    spec_a, spec_b = config.engines
    pairs = (max(1, config.games) + 1) // 2
    shared = _Shared(config, MatchResult(spec_a.name, spec_b.name, config.sprt), queue.Queue(), queue.Queue())
    rng = random.Random(config.seed)
    for pair, opening in enumerate(opening_schedule(config.openings, pairs, config.opening_order, rng), 1):
        shared.jobs.put((pair, 0, opening))
        shared.jobs.put((pair, 1, opening))

    stderr, chess960 = config.show_engine_stderr, config.variant == "chess960"
    all_players = [(Player(spec_a, stderr, chess960), Player(spec_b, stderr, chess960))
                   for _ in range(max(1, min(config.concurrency, 2 * pairs)))]
    try:
        for player in all_players[0]:
            player.ensure_started()
    except MatchError:
        for player in all_players[0]:
            player.close()
        raise
    progress.write(f"Started match{': ' + config.label if config.label else ''}: {spec_a.name} vs {spec_b.name}, "
                   f"{config.limits.describe()}, {config.games} games; openings {config.openings_source or '?'} "
                   f"({len(config.openings)}, {config.opening_order} order, seed {config.seed})\n")
    progress.flush()
    threads = [threading.Thread(target=_worker, args=(shared, players), name=f"match-worker-{i}", daemon=True)
               for i, players in enumerate(all_players)]
    for thread in threads:
        thread.start()
    running = len(threads)
    result = shared.result
    pgn_handle = open(config.pgn_path, "a", encoding="utf-8") if config.pgn_path else None  # noqa: SIM115
    try:
        while running:
            try:
                kind, payload, text = shared.reports.get(timeout=0.25)
            except queue.Empty:
                continue
            if kind == "done":
                running -= 1
            elif kind == "error":
                with shared.lock:
                    if result.stopped is None or result.stopped.startswith("SPRT"):
                        result.stopped = f"error: {payload}"
                shared.stop.set()
                progress.write(f"azengine match: error: {payload}; stopping the match\n")
                progress.flush()
            else:
                record: GameRecord = payload
                if pgn_handle is not None and record.pgn is not None:
                    pgn_handle.write(str(record.pgn) + "\n\n")
                    pgn_handle.flush()
                progress.write(text)
                progress.flush()
    except KeyboardInterrupt:
        shared.abort.set()
        shared.stop.set()
        result.stopped = "interrupted"
        for players in all_players:
            for player in players:
                player.kill()
        for thread in threads:
            thread.join(timeout=5.0)
    finally:
        if pgn_handle is not None:
            pgn_handle.close()
    return result

