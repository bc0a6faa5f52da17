"""The UCI protocol loop: commands from a GUI in, protocol lines out.

Input is read on the calling thread, searches run on a thread of their own and every line goes out
through one :class:`~uci.writer.UciWriter`. The network is loaded lazily (on ``isready`` or the first
``go``), after the GUI has set its options; a faster form may follow from a background load
(:mod:`uci.upgrade`), taken between two searches. Bad input never ends the loop: it is answered with an
``info string`` line.

Command order: each ``go`` becomes a search job with its own copy of the position, run one after the
other, and each job sends exactly one ``bestmove``. ``position`` during a search sets the position for
the next ``go``; a ``go`` during a search waits for that search's ``bestmove`` (during ``infinite`` or
ponder it is told, in an ``info string``, to wait for ``stop``); ``stop`` ends the running search and
every waiting one at once.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import chess

import engine
from engine.interface import Evaluator, UniformEvaluator
from search import Limits, Searcher, SearchInfo, SearchParams, SearchResult
from search.tablebase import Tablebases

from . import __version__
from .options import DEFAULT_WEIGHTS, OPTIONS, OptionError, OptionValues
from .protocol import UciParseError, format_info, format_move_stats, parse_go, parse_position, parse_setoption
from .upgrade import NetworkUpgrade, load_playing
from .writer import UciWriter

log = logging.getLogger(__name__)

ENGINE_NAME = f"azengine {__version__}"
ENGINE_AUTHOR = "the azengine developers"


@dataclass
class SearchJob:
    """One ``go``: its position and limits, and what ``stop``/``ponderhit`` said about it so far."""

    board: chess.Board
    limits: Limits
    stopped: bool = False
    ponderhit: bool = False
    release: threading.Event = field(default_factory=threading.Event)  # infinite/ponder may report

    def holds_bestmove(self) -> bool:
        """True for ``infinite`` and ponder searches: no bestmove before ``stop`` (or ``ponderhit``)."""
        return (self.limits.infinite or self.limits.ponder) and not self.release.is_set()


class UciEngine:
    """State of one UCI session: options, position, network and the running search."""

    def __init__(self, writer: UciWriter) -> None:
        self.out = writer
        self.options = OptionValues()
        self.board = chess.Board()
        self.params = SearchParams()
        self.evaluator: Evaluator | None = None
        self.searcher: Searcher | None = None
        self.tablebases: Tablebases | None = None
        self._loaded_key: tuple[str, str] | None = None
        self._load_error: str | None = None  # why the network asked for is not the one playing
        self._threads_applied: int | None = None
        self._upgrade: NetworkUpgrade | None = None  # the faster form loading in the background (uci.upgrade)
        self._search_thread: threading.Thread | None = None  # runs the jobs (the latest such thread)
        self._serving = False  # whether that thread is still taking jobs
        self._jobs: deque[SearchJob] = deque()
        self._current: SearchJob | None = None
        self._lock = threading.Lock()  # guards _jobs, _current and _serving
        self._idle = threading.Event()  # set while no job runs or waits (a background load's heavy step waits)
        self._idle.set()
        self.debug = False

    # ----- helpers ---------------------------------------------------------------------------

    def info_string(self, text: str) -> None:
        """Send ``info string <text>`` (one line per line of text)."""
        for line in text.splitlines() or [""]:
            self.out.send(f"info string {line}")

    def _weights_path(self) -> Path:
        value = self.options["WeightsFile"]
        return engine.default_model_path() if value in ("", DEFAULT_WEIGHTS, "<default>") else Path(value).expanduser()

    def _load(self, path: str, backend: str) -> Evaluator:
        running, self._upgrade = self._upgrade, None
        evaluator, self._upgrade = load_playing(path, backend, self.options["Threads"], self.params.minibatch_size,
                                                running, self._idle)
        return evaluator

    def _start_upgrade(self) -> None:
        """Start the background load, if one waits (after ``readyok`` went out, or as the first search starts)."""
        upgrade = self._upgrade
        if upgrade is not None:
            upgrade.start()

    def _adopt_upgrade(self) -> None:
        """Between two searches: play the network the background load brought, or say once why it did not."""
        upgrade = self._upgrade
        if upgrade is None or not upgrade.done():
            return
        self._upgrade = None
        evaluator = upgrade.result()
        if evaluator is None:
            self.info_string(f"{upgrade.backend} could not be loaded ({upgrade.failure()}); "
                             f"keeping {self._playing_text()}")
            return
        self._use(evaluator, "switched to", threads_applied=upgrade.threads)
        self._apply_threads()  # Threads may have changed during the load

    def ensure_model(self) -> None:
        """Load the network if the options name another one than the loaded one.

        A file that cannot be loaded leaves the previous network playing, or the bundled one when none
        was loaded yet; the error goes out as ``info string`` now and at every ``go`` until fixed.
        """
        key = (str(self._weights_path()), self.options["Backend"])
        if key == self._loaded_key:
            self._adopt_upgrade()
            return
        self._loaded_key = key
        try:
            evaluator = self._load(*key)
        except (engine.ModelFileError, ValueError, OSError) as exc:
            self._load_error = f"{exc}"
            if self.evaluator is None:
                try:
                    evaluator = self._load(str(engine.default_model_path()), "auto")
                except (engine.ModelFileError, ValueError, OSError) as bundled_exc:
                    self._load_error += f"; the bundled network failed too ({bundled_exc})"
                    self.info_string(f"error: {self._load_error}: {self._playing_text()}")
                    return
                self._use(evaluator)
                self._load_error += "; playing the bundled network instead"
            else:
                self._load_error += "; keeping the previous network"
            self.info_string(f"error: {self._load_error}: {self._playing_text()}")
            return
        self._load_error = None
        self._use(evaluator)

    def _use(self, evaluator: Evaluator, verb: str = "loaded", threads_applied: int | None = None) -> None:
        """Play ``evaluator`` from the next search on (the searcher's tree and NN cache are cleared)."""
        info = evaluator.info
        self.info_string(f"{verb} {info.describe()}")
        for note in info.notes:
            self.info_string(note)
        self.evaluator = evaluator
        self._threads_applied = self.options["Threads"] if threads_applied is None else threads_applied
        if self.searcher is not None:
            self.searcher.set_evaluator(evaluator)
        # torch and ONNX Runtime leave about 250,000 long-lived objects; a full collection walking them all
        # takes ~0.1 s at a random moment, a time loss at a fast clock: keep them out of its walk
        gc.freeze()

    def _playing_text(self) -> str:
        if self.evaluator is None:
            return "no network is loaded, moves are poor (uniform priors)"
        return self.evaluator.info.describe()

    def _apply_threads(self) -> None:
        """Give the loaded evaluator the ``Threads`` option (ONNX Runtime: a new session)."""
        threads = self.options["Threads"]
        if self.evaluator is None or threads == self._threads_applied:
            return
        set_threads = getattr(self.evaluator, "set_threads", None)
        if set_threads is not None:
            set_threads(threads)
            self.info_string(f"network now runs on {threads} thread{'s' if threads != 1 else ''}")
        self._threads_applied = threads

    def _ensure_searcher(self) -> Searcher:
        self.ensure_model()
        self._start_upgrade()
        self._apply_threads()
        if self.searcher is None:
            self.searcher = Searcher(self.evaluator or UniformEvaluator(), self.params)
            self.searcher.set_tablebases(self.tablebases)
        return self.searcher

    def searching(self) -> bool:
        """True while a search runs or waits to run (not every bestmove sent yet)."""
        with self._lock:
            busy = self._current is not None or bool(self._jobs)
        if not busy:
            self._wait_search()
        return busy

    # ----- commands --------------------------------------------------------------------------

    def handle(self, line: str) -> bool:
        """Execute one input line; returns False after ``quit``."""
        words = line.strip().split()
        if not words:
            return True
        command, args = words[0], words[1:]
        handler = getattr(self, f"cmd_{command}", None) if command.isidentifier() else None
        if handler is None:
            self.info_string(f"unknown command: {line.strip()[:200]}")
            return True
        try:
            return handler(args) is not False
        except (UciParseError, OptionError) as exc:
            self.info_string(f"error: {exc}")
        except Exception as exc:  # a bug must not kill the engine under a GUI
            log.exception("command failed: %s", line.strip())
            self.info_string(f"internal error in {command}: {exc}")
        return True

    def cmd_uci(self, args: list[str]) -> None:
        self.out.send(f"id name {ENGINE_NAME}")
        self.out.send(f"id author {ENGINE_AUTHOR}")
        for option in OPTIONS:
            self.out.send(option.uci_line())
        self.out.send("uciok")

    def cmd_debug(self, args: list[str]) -> None:
        self.debug = bool(args) and args[0] == "on"

    def cmd_isready(self, args: list[str]) -> None:
        if not self.searching():
            self.ensure_model()
        self.out.send("readyok")
        self._start_upgrade()  # after readyok: the GUI need not wait for it

    def cmd_setoption(self, args: list[str]) -> None:
        name, value = parse_setoption(args)
        option, typed = self.options.set(name, value)
        if option.param:
            setattr(self.params, option.param, typed)
        elif option.name == "Threads" and not self.searching():  # else at the next go
            self._apply_threads()
        elif option.name == "UCI_Chess960":
            self.board = chess.Board(self.board.fen(), chess960=typed)
        elif option.name == "SyzygyPath":
            self._open_tablebases(typed)

    def _open_tablebases(self, path_list: str) -> None:
        """Open the Syzygy tables of ``SyzygyPath`` (``<empty>``: none); what was found goes out as info string."""
        if self.searching():  # the running search probes the current tables
            self.cmd_stop([])
        old, self.tablebases = self.tablebases, None
        if path_list.strip() not in ("", "<empty>"):
            opened = Tablebases.open(path_list)
            self.tablebases = opened.tablebases
            self.info_string(opened.message)
        if self.searcher is not None:
            self.searcher.set_tablebases(self.tablebases)
        if old is not None:
            old.close()

    def cmd_ucinewgame(self, args: list[str]) -> None:
        self._stop_all()  # an infinite or ponder search would never end: joining it would hang the loop
        self._wait_search()
        if self.searcher is not None:
            self.searcher.new_game()
        self.board = chess.Board(chess960=self.options["UCI_Chess960"])

    def cmd_position(self, args: list[str]) -> None:
        # a running search has its own copy of the position
        parsed = parse_position(args, chess960=self.options["UCI_Chess960"])
        self.board = parsed.board
        if parsed.error:
            self.info_string(f"error: {parsed.error}")

    def cmd_go(self, args: list[str]) -> None:
        try:
            limits = parse_go(args, self.board)
        except UciParseError as exc:  # the GUI still waits for a bestmove: answer after a one-node search
            self.info_string(f"error: {exc}; searching one node")
            limits = Limits(nodes=1)
        job = SearchJob(self.board.copy(), limits)
        with self._lock:
            waiting_for = self._jobs[-1] if self._jobs else self._current
            if waiting_for is not None and waiting_for.holds_bestmove():
                self.info_string("go during an infinite or ponder search: it starts after stop")
            self._jobs.append(job)
            self._idle.clear()
            if not self._serving:
                self._serving = True
                self._search_thread = threading.Thread(target=self._serve_jobs, name="search", daemon=True)
                self._search_thread.start()

    def _stop_all(self) -> None:
        """Stop the running search and every waiting one (each still sends its bestmove)."""
        with self._lock:
            jobs = [*self._jobs, *([self._current] if self._current is not None else [])]
            for job in jobs:
                job.stopped = True
                job.release.set()
            if self.searcher is not None and self._current is not None:
                self.searcher.stop()

    def cmd_stop(self, args: list[str]) -> None:
        self._stop_all()
        self._wait_search()

    def cmd_ponderhit(self, args: list[str]) -> None:
        with self._lock:
            job = self._current if self._current is not None and self._current.limits.ponder else None
            if job is None:
                job = next((j for j in self._jobs if j.limits.ponder and not j.ponderhit), None)
            if job is None:
                return
            job.ponderhit = True
            job.release.set()
            if job is self._current and self.searcher is not None:
                self.searcher.ponderhit()

    def cmd_quit(self, args: list[str]) -> bool:
        self._stop_all()
        thread = self._search_thread
        if thread is not None:
            thread.join(timeout=0.5)
        return False

    def cmd_d(self, args: list[str]) -> None:
        """Non-standard: show the current position (as info strings)."""
        self.info_string(f"fen {self.board.fen()}")
        self.info_string(str(self.board))

    # ----- the search thread -----------------------------------------------------------------

    def _wait_search(self) -> None:
        thread = self._search_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _send_info(self, info: SearchInfo) -> None:
        for line in format_info(info, self.options["UCI_ShowWDL"]):
            self.out.send(line)

    def _serve_jobs(self) -> None:
        """The search thread: run the waiting jobs one after the other, then end."""
        while True:
            with self._lock:
                if not self._jobs:
                    self._current = None
                    self._serving = False
                    self._idle.set()
                    return
                job = self._current = self._jobs.popleft()
            self._run_job(job)

    def _run_job(self, job: SearchJob) -> None:
        try:
            searcher = self._ensure_searcher()
            searcher.reset_signals()
            with self._lock:  # a stop or ponderhit that came before the searcher was ready
                if job.stopped:
                    searcher.stop()
                if job.ponderhit:
                    job.limits.ponder = False
            if self._load_error is not None:
                self.info_string(f"error: {self._load_error}: {self._playing_text()}")
            if self.debug:
                self.info_string(f"debug: this search runs {self._playing_text()}")
            result = searcher.search(job.board, job.limits, on_info=self._send_info, reset_signals=False)
        except Exception as exc:
            log.exception("search failed")
            self.info_string(f"internal error in search: {exc}")
            legal = list(job.board.legal_moves)
            self._send_bestmove(f"bestmove {legal[0].uci() if legal else '0000'}")
            return
        self._report(result, job)

    def _report(self, result: SearchResult, job: SearchJob) -> None:
        if result.tree_full:
            self.info_string("memory limit reached (RamLimitMb): the tree no longer grows, the search refines it")
        if self.options["VerboseMoveStats"]:
            for line in format_move_stats(result.info.stats):
                self.out.send(line)
        self._send_info(result.info)
        if job.limits.ponder or job.limits.infinite:
            # UCI: no bestmove while pondering or in infinite mode until the GUI says stop/ponderhit
            job.release.wait()
        if result.best_move is None:
            self._send_bestmove("bestmove 0000")
        elif result.ponder_move is not None:
            self._send_bestmove(f"bestmove {result.best_move.uci()} ponder {result.ponder_move.uci()}")
        else:
            self._send_bestmove(f"bestmove {result.best_move.uci()}")

    def _send_bestmove(self, line: str) -> None:
        """The job is done before its bestmove goes out: the GUI may send isready or go at once."""
        with self._lock:
            self._current = None
        self.out.send(line)


def run(stream_in: TextIO, stream_out: TextIO) -> None:
    """Run the UCI loop until ``quit`` or end of input."""
    uci = UciEngine(UciWriter(stream_out))
    while True:
        raw = stream_in.readline()
        if not raw:  # end of input: the GUI closed our stdin
            uci.cmd_quit([])
            break
        if not uci.handle(raw):
            break
