"""The UCI protocol loop: commands from a GUI in, protocol lines out.

Input is read on the calling thread, searches run on a thread of their own and every line goes out
through one :class:`~uci.writer.UciWriter`. The network is loaded lazily (on ``isready`` or the first
``go``), after the GUI has set its options. Bad input never ends the loop: it is answered with an
``info string`` line.
"""

from __future__ import annotations

import logging
import threading
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
from .writer import UciWriter

log = logging.getLogger(__name__)

ENGINE_NAME = f"azengine {__version__}"
ENGINE_AUTHOR = "the azengine developers"

#: UCI option (lower case) -> the SearchParams field it sets.
SEARCH_PARAM_OF_OPTION = {
    "cpuct": "cpuct", "cpuctbase": "cpuct_base", "cpuctfactor": "cpuct_factor", "fpuvalue": "fpu_value",
    "fpuvalueatroot": "fpu_value_at_root", "policytemperature": "policy_temperature",
    "minibatchsize": "minibatch_size", "nncachesize": "nn_cache_size",
    "ramlimitmb": "ram_limit_mb", "smartpruningfactor": "smart_pruning_factor",
    "moveoverheadms": "move_overhead_ms", "slowmover": "slow_mover", "multipv": "multipv", "temperature": "temperature",
    "tempcutoffmove": "temp_cutoff_move", "seed": "seed",
}


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
        self._loaded_key: tuple[str, str, int] | None = None  # file, backend, threads of the loaded network
        self._search_thread: threading.Thread | None = None
        self._pondering = False
        self._infinite = False
        self._release = threading.Event()  # set by stop/ponderhit: a finished infinite/ponder search may report
        self._reported = threading.Event()  # set once the running search has sent its bestmove
        self.debug = False

    # ----- helpers ---------------------------------------------------------------------------

    def info_string(self, text: str) -> None:
        """Send ``info string <text>`` (one line per line of text)."""
        for line in text.splitlines() or [""]:
            self.out.send(f"info string {line}")

    def _weights_path(self) -> Path:
        value = self.options["WeightsFile"]
        return engine.default_model_path() if value in ("", DEFAULT_WEIGHTS, "<default>") else Path(value).expanduser()

    def ensure_model(self) -> None:
        """Load the network if the options name another file, backend or thread count than the loaded one
        (an ONNX Runtime session's threads are fixed when it is made); errors go out as info string."""
        key = (str(self._weights_path()), self.options["Backend"], self.options["Threads"])
        if key == self._loaded_key:
            return
        self._loaded_key = key
        try:
            from engine.loader import load_for_play

            evaluator = load_for_play(key[0], backend=key[1], threads=key[2])
        except (engine.ModelFileError, ValueError, OSError) as exc:
            if self.evaluator is None:
                self.info_string(f"error: {exc}; no network is loaded, moves will be poor (uniform priors)")
            else:
                self.info_string(f"error: {exc}; keeping the previous network")
            return
        info = evaluator.info
        self.info_string(f"loaded {info.describe()}")
        for note in info.notes:
            self.info_string(note)
        self.evaluator = evaluator
        if self.searcher is not None:
            self.searcher.set_evaluator(evaluator)

    def _ensure_searcher(self) -> Searcher:
        self.ensure_model()
        if self.searcher is None:
            self.searcher = Searcher(self.evaluator or UniformEvaluator(), self.params)
            self.searcher.set_tablebases(self.tablebases)
        return self.searcher

    def searching(self) -> bool:
        """True while a search runs (its bestmove not yet sent)."""
        if self._search_thread is None:
            return False
        if self._reported.is_set():  # bestmove is out; the thread is only returning
            self._wait_search()
            return False
        return True

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

    def cmd_setoption(self, args: list[str]) -> None:
        name, value = parse_setoption(args)
        option, typed = self.options.set(name, value)
        key = option.name.lower()
        if key in SEARCH_PARAM_OF_OPTION:
            setattr(self.params, SEARCH_PARAM_OF_OPTION[key], typed)
        elif key == "uci_chess960":
            self.board = chess.Board(self.board.fen(), chess960=typed)
        elif key == "syzygypath":
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
        if self.searching():  # an infinite or ponder search would never end: joining it would hang the loop
            self.cmd_stop([])
        self._wait_search()
        if self.searcher is not None:
            self.searcher.new_game()
        self.board = chess.Board(chess960=self.options["UCI_Chess960"])

    def cmd_position(self, args: list[str]) -> None:
        if self.searching():
            self.info_string("error: position ignored while searching; send stop first")
            return
        parsed = parse_position(args, chess960=self.options["UCI_Chess960"])
        self.board = parsed.board
        if parsed.error:
            self.info_string(f"error: {parsed.error}")

    def cmd_go(self, args: list[str]) -> None:
        if self.searching():
            self.info_string("error: already searching; send stop first")
            return
        limits = parse_go(args, self.board)
        searcher = self._ensure_searcher()
        self._pondering = limits.ponder
        # only 'infinite' (and ponder) hold the bestmove back until stop; 'go mate N' reports when it has the mate
        self._infinite = limits.infinite
        self._release.clear()
        self._reported.clear()
        searcher.reset_signals()  # here, not in the thread: a stop may come before the thread runs
        board = self.board.copy()
        self._search_thread = threading.Thread(target=self._run_search, args=(searcher, board, limits),
                                               name="search", daemon=True)
        self._search_thread.start()

    def cmd_stop(self, args: list[str]) -> None:
        self._release.set()
        if self.searcher is not None:
            self.searcher.stop()
        self._wait_search()

    def cmd_ponderhit(self, args: list[str]) -> None:
        self._pondering = False
        self._release.set()
        if self.searcher is not None:
            self.searcher.ponderhit()

    def cmd_quit(self, args: list[str]) -> bool:
        self._release.set()
        if self.searcher is not None:
            self.searcher.stop()
        if self._search_thread is not None:
            self._search_thread.join(timeout=0.5)
        return False

    def cmd_d(self, args: list[str]) -> None:
        """Non-standard: show the current position (as info strings)."""
        self.info_string(f"fen {self.board.fen()}")
        self.info_string(str(self.board))

    # ----- the search thread -----------------------------------------------------------------

    def _wait_search(self) -> None:
        if self._search_thread is not None:
            self._search_thread.join()
            self._search_thread = None

    def _send_info(self, info: SearchInfo) -> None:
        for line in format_info(info, self.options["UCI_ShowWDL"]):
            self.out.send(line)

    def _run_search(self, searcher: Searcher, board: chess.Board, limits: Limits) -> None:
        try:
            result = searcher.search(board, limits, on_info=self._send_info, reset_signals=False)
        except Exception as exc:
            log.exception("search failed")
            self.info_string(f"internal error in search: {exc}")
            legal = list(board.legal_moves)
            move = legal[0].uci() if legal else "0000"
            self._reported.set()
            self.out.send(f"bestmove {move}")
            return
        self._report(result, limits)

    def _report(self, result: SearchResult, limits: Limits) -> None:
        if result.tree_full:
            self.info_string("tree memory limit reached (RamLimitMb): the search stopped growing")
        if self.options["VerboseMoveStats"]:
            for line in format_move_stats(result.info.stats):
                self.out.send(line)
        self._send_info(result.info)
        if limits.ponder or self._infinite:
            # UCI: no bestmove while pondering or in infinite mode until the GUI says stop/ponderhit
            self._release.wait()
        self._reported.set()  # before the line goes out: the GUI may answer at once
        if result.best_move is None:
            self.out.send("bestmove 0000")
        elif result.ponder_move is not None:
            self.out.send(f"bestmove {result.best_move.uci()} ponder {result.ponder_move.uci()}")
        else:
            self.out.send(f"bestmove {result.best_move.uci()}")


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
