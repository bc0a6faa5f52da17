"""The search driver: runs the Cython tree with batched, pipelined network calls.

``Searcher.search(board, limits, on_info)`` blocks until a limit is reached or ``stop()`` is called
from another thread, and returns a :class:`~search.types.SearchResult`. While the evaluator runs a
batch on a worker thread (torch releases the GIL), the next batch is gathered, so tree work and
network work overlap.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import chess
import numpy as np

from engine.encoding import PLANE_OF_MOVE, bitboards_to_planes
from engine.interface import LC0_INPUT, Evaluator, input_format_of
from engine.nets.lc0.encoding import history_slots, lc0_rows_to_planes
from engine.nets.lc0.policy import INDEX_OF_SQUARES
from engine.priors import UNDERPROMOTION_LOGIT_PENALTY

from . import _mcts
from .report import choose_move, pv_line, ranked_root
from .tablebase import Tablebases
from .timeman import time_budget_ms
from .types import Limits, MoveStats, SearchInfo, SearchParams, SearchResult

log = logging.getLogger(__name__)

_mcts._init_tables(PLANE_OF_MOVE)
_mcts._init_lc0_tables(INDEX_OF_SQUARES)

INFO_INTERVAL_S = 1.0
#: Below this time budget for a move the root's tablebase moves are chosen by WDL alone: probing DTZ
#: after every root move (python-chess's prober) would take a large share of a short budget.
TABLEBASE_DTZ_MIN_BUDGET_MS = 200.0
#: Pause of the search loop when a round selected nothing (every path collided): no busy spinning.
IDLE_WAIT_S = 0.001
#: Share of ``RamLimitMb`` the NN cache may take at most; the tree gets the rest.
NN_CACHE_BUDGET_SHARE = 0.25
#: Bytes of one NN cache entry.
NN_CACHE_ENTRY_BYTES = _mcts.NN_CACHE_ENTRY_BYTES


def position_key(board: chess.Board) -> int:
    """The key the tree uses for transpositions and repetitions (pieces, side, castling, e.p.)."""
    return _mcts.position_key(board)


def _history_keys(board: chess.Board) -> list[int]:
    """Keys of the positions before ``board`` since the last capture or pawn move."""
    keys = []
    replay = board.copy()
    for _ in range(min(board.halfmove_clock, len(board.move_stack))):
        replay.pop()
        keys.append(position_key(replay))
    return keys[::-1]


class Searcher:
    """PUCT tree search over one evaluator; keeps its tree between moves of a game for reuse."""

    def __init__(self, evaluator: Evaluator, params: SearchParams | None = None) -> None:
        self.evaluator = evaluator
        self.params = params or SearchParams()
        self.tree = _mcts.Tree()
        self.tree.underpromotion_penalty = UNDERPROMOTION_LOGIT_PENALTY
        self.runner = _mcts.BatchRunner(self.tree, chess.Board(), _mcts.NNCache(0))
        self._batches = [_mcts.Batch(max(1, self.params.minibatch_size)) for _ in range(2)]
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluator")
        self._stop = threading.Event()
        self._ponderhit = threading.Event()
        self._in_flight: list[Future] = []  # evaluations of a stopped search, still running
        self._eval_ms = 0.0  # recent milliseconds per network call (moving average)
        self._root_board: chess.Board | None = None
        self._seed: int | None = None
        self._rng = random.Random()
        self._budget: tuple[int, int] | None = None
        self.reused_visits = 0
        self.tablebases: Tablebases | None = None
        self._tablebase_root_decided = False  # the tables chose the root moves: a first batch is enough
        self._use_input_of(evaluator)
        self.apply_params()

    # ----- control from other threads -------------------------------------------------------

    def stop(self) -> None:
        """Ask the running search to finish now; ``search`` returns its result promptly."""
        self._stop.set()

    def ponderhit(self) -> None:
        """The opponent played the pondered move: the ponder search becomes a normal timed one."""
        self._ponderhit.set()

    # ----- configuration ---------------------------------------------------------------------

    def set_evaluator(self, evaluator: Evaluator) -> None:
        """Use another network; the tree and the cache are cleared."""
        self.evaluator = evaluator
        self._use_input_of(evaluator)
        self.new_game()

    def _use_input_of(self, evaluator: Evaluator) -> None:
        """Gather leaves in the evaluator's ``input_format``: azengine's 16 planes, or lc0's 112 with history."""
        self._lc0_input = input_format_of(evaluator) == LC0_INPUT
        self.runner.lc0_input = self._lc0_input

    def set_tablebases(self, tablebases: Tablebases | None) -> None:
        """Use these Syzygy tables (None: none) in the tree and at the root; the tree is cleared."""
        self.tablebases = tablebases
        self.runner.set_tablebases(tablebases)
        self.new_game()

    def new_game(self) -> None:
        """Forget the tree and the evaluation cache."""
        self._drain()
        self.tree.reset()
        self.runner.cache.clear()
        self._root_board = None

    def memory_budget(self) -> tuple[int, int]:
        """(NN cache entries, tree bytes) from ``RamLimitMb`` and ``NNCacheSize``.

        The cache takes at most :data:`NN_CACHE_BUDGET_SHARE` of the limit, the tree the rest;
        with no limit (0) the cache holds ``NNCacheSize`` entries and the tree is unbounded.
        """
        p = self.params
        if p.ram_limit_mb <= 0:
            return p.nn_cache_size, 1 << 40
        limit = p.ram_limit_mb * 1024 * 1024
        entries = min(p.nn_cache_size, int(limit * NN_CACHE_BUDGET_SHARE) // NN_CACHE_ENTRY_BYTES)
        return entries, limit - entries * NN_CACHE_ENTRY_BYTES

    def apply_params(self) -> None:
        """Push ``self.params`` into the tree (after options changed)."""
        p, t = self.params, self.tree
        t.cpuct, t.cpuct_base, t.cpuct_factor = p.cpuct, p.cpuct_base, p.cpuct_factor
        t.fpu_reduction, t.fpu_reduction_root = p.fpu_value, p.fpu_value_at_root
        if t.policy_temperature != p.policy_temperature:  # priors in the tree are stale
            t.policy_temperature = p.policy_temperature
            self.new_game()
        budget = self.memory_budget()
        if budget != self._budget:
            self._drain()
            self._budget = budget
            if self.runner.cache.size != budget[0]:
                self.runner.cache.resize(budget[0])
            t.set_budget(budget[1])  # a raised RamLimitMb lets a kept tree grow again
        if self._batches[0].capacity != max(1, p.minibatch_size):
            self._batches = [_mcts.Batch(max(1, p.minibatch_size)) for _ in range(2)]
        if p.seed != self._seed:  # seeded once per Seed; 0: fresh entropy
            self._seed = p.seed
            self._rng = random.Random(p.seed or None)

    def hashfull(self) -> int:
        """Per mille of ``RamLimitMb`` in use by the tree and the NN cache (1000 once the tree is full)."""
        if self.params.ram_limit_mb <= 0:
            return 0
        if self.tree.at_limit():
            return 1000
        used = self.tree.memory_bytes() + self.runner.cache.memory_bytes()
        return min(1000, int(1000 * used / (self.params.ram_limit_mb * 1024 * 1024)))

    def close(self) -> None:
        """Stop the evaluator thread."""
        self._drain()
        self._executor.shutdown(wait=True)

    # ----- the search -----------------------------------------------------------------------

    def _drain(self) -> None:
        for future in self._in_flight:
            try:
                future.result()
            except Exception:  # the result is discarded anyway
                log.debug("discarded evaluation failed", exc_info=True)
        self._in_flight = []

    @staticmethod
    def _done_in_time(future: Future, budget_ms: float | None, timer_start: float, limits: Limits) -> bool:
        """Wait for ``future`` but not past a clock budget: False when the budget ran out first."""
        if budget_ms is None or limits.ponder or future.done():
            return True
        left = budget_ms / 1000.0 - (time.monotonic() - timer_start)
        return left > 0 and not wait([future], timeout=left).not_done

    def _budget_ms(self, limits: Limits, turn: chess.Color) -> float | None:
        return time_budget_ms(limits, turn, self.params.move_overhead_ms, self.params.slow_mover)

    def _prepare_root(self, board: chess.Board) -> None:
        """Reuse the subtree of ``board`` when it follows from the previous root, else start afresh."""
        self.reused_visits = 0
        old = self._root_board
        node = -1
        if old is not None and board.move_stack[: len(old.move_stack)] == old.move_stack \
                and board.chess960 == old.chess960 and board.root() == old.root():
            node = 0
            for move in board.move_stack[len(old.move_stack):]:
                node = self.tree.child_of(node, _mcts.encode_move(move))
                if node < 0:
                    break
        if node >= 0 and self.tree.node_stats(node).expanded:
            self.reused_visits = self.tree.reroot(node)
        else:
            self.tree.reset()
        self._root_board = board.copy()
        self.runner.set_board(self._root_board)
        self.tree.set_root_key(position_key(board))
        self.tree.set_history(_history_keys(board))
        if self._lc0_input:
            self.runner.set_lc0_history(history_slots(board))

    def _evaluate_batch(self, bitboards: np.ndarray,
                        extra: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Logits, values and (from a WDL network) draw probabilities of the gathered leaves (``extra``: the
        black-to-move flags of 16-plane bitboards, the rule-50 counts of lc0 bitboards)."""
        started = time.monotonic()
        planes = lc0_rows_to_planes(bitboards, extra) if self._lc0_input else bitboards_to_planes(bitboards, extra)
        if getattr(self.evaluator, "has_wdl", False):
            logits, wdl = self.evaluator.evaluate_wdl(planes)
            result = (logits, wdl[:, 0] - wdl[:, 2], wdl[:, 1])
        else:
            result = (*self.evaluator.evaluate(planes), None)
        took_ms = (time.monotonic() - started) * 1000.0
        self._eval_ms = took_ms if self._eval_ms == 0.0 else 0.8 * self._eval_ms + 0.2 * took_ms
        return result

    def _apply(self, batch: _mcts.Batch, result: tuple[np.ndarray, np.ndarray, np.ndarray | None]) -> None:
        logits, values, draws = result
        self.runner.apply(batch, np.ascontiguousarray(logits, dtype=np.float32),
                          np.ascontiguousarray(values, dtype=np.float32),
                          None if draws is None else np.ascontiguousarray(draws, dtype=np.float32))

    def _expand_root(self) -> None:
        """Evaluate the root synchronously if it is not expanded yet."""
        if self.tree.node_stats(0).expanded:
            return
        batch = self._batches[0]
        count, bitboards, black = self.runner.gather(batch, 1, 1)
        if count:
            self._apply(batch, self._evaluate_batch(bitboards, black))

    def _mark_root_mates(self, board: chess.Board) -> None:
        for move in board.legal_moves:
            board.push(move)
            mate = board.is_checkmate()
            board.pop()
            if mate:
                self.tree.mark_mated(_mcts.encode_move(move))

    def reset_signals(self) -> None:
        """Forget earlier ``stop()`` / ``ponderhit()`` calls. ``search`` does this itself unless told not to,
        for callers that start it on another thread and may call ``stop()`` before it begins."""
        self._stop.clear()
        self._ponderhit.clear()

    def search(self, board: chess.Board, limits: Limits,
               on_info: Callable[[SearchInfo], None] | None = None, reset_signals: bool = True) -> SearchResult:
        """Search ``board`` (with its move stack: repetitions, tree reuse) until ``limits`` or ``stop()``."""
        start = time.monotonic()
        if reset_signals:
            self.reset_signals()
        # evaluations a stopped search left running are not waited for: their leaves were cancelled,
        # and the clock of this search must not pay for them
        self._in_flight = [future for future in self._in_flight if not future.done()]
        self.apply_params()
        legal = list(board.legal_moves)
        if not legal:
            info = SearchInfo(0, 0, 0, 0, 0, 0, [], [])
            return SearchResult(None, None, info, stopped_by="no legal move")
        self._prepare_root(board)
        playouts_before = self.runner.playouts
        depth_before = self.runner.sum_depth
        self.runner.max_depth_seen = 0
        self.runner.tb_hits = 0
        self._expand_root()
        self._mark_root_mates(board.copy(stack=False))
        allowed = {_mcts.encode_move(m) for m in limits.searchmoves if m in legal} or None
        budget_ms = None if limits.ponder else self._budget_ms(limits, board.turn)
        allowed = self._tablebase_root(board, allowed, budget_ms)
        self.tree.set_excluded(allowed)

        timer_start = start
        want_nodes = limits.nodes
        stopped_by = ""
        batches = self._batches
        pending: tuple[_mcts.Batch, Future] | None = None
        overflow: tuple[_mcts.Batch, Future] | None = None  # a batch sent when the clock ran out
        which = 0
        last_info = start

        def searched() -> int:
            return self.runner.playouts - playouts_before

        try:
            while True:
                now = time.monotonic()
                if self._ponderhit.is_set() and limits.ponder:
                    limits.ponder = False
                    self._ponderhit.clear()
                    timer_start = now
                    budget_ms = self._budget_ms(limits, board.turn)
                stopped_by = self._should_stop(limits, now, timer_start, budget_ms, searched(),
                                               depth_before, len(legal), allowed)
                if stopped_by:
                    break
                room = self.params.minibatch_size
                if budget_ms is not None and not limits.ponder \
                        and (now - timer_start) * 1000.0 + self._eval_ms > budget_ms:
                    if pending is None:  # another network call would overrun the clock budget
                        stopped_by = "time"
                        break
                    room = 0
                if want_nodes is not None:
                    in_flight = pending[0].count if pending else 0
                    room = min(room, want_nodes - searched() - in_flight)
                batch = batches[which]
                before = searched()
                count, bitboards, black = 0, None, None
                if room > 0:
                    limit = room if want_nodes is not None else -1
                    count, bitboards, black = self.runner.gather(batch, room, self.params.max_collisions, limit)
                future = self._executor.submit(self._evaluate_batch, bitboards, black) if count else None
                if pending is not None:
                    if not self._done_in_time(pending[1], budget_ms, timer_start, limits):
                        stopped_by = "time"  # the hard stop: a slow batch must not cost the game
                        overflow = (batch, future) if future is not None else None
                        break
                    self._apply(pending[0], pending[1].result())
                    pending = None
                if future is not None:
                    pending = (batch, future)
                    which ^= 1
                elif pending is None and searched() == before:
                    time.sleep(IDLE_WAIT_S)  # nothing to select (all collisions): do not spin
                if on_info is not None and now - last_info >= INFO_INTERVAL_S:
                    last_info = now
                    on_info(self._info(start, searched(), depth_before))
        except BaseException:  # the evaluator failed: leave no leaf waiting for it in the tree
            for waiting in batches:
                if waiting.count:
                    self.runner.cancel(waiting)
            raise
        for waiting in (pending, overflow):
            if waiting is None:
                continue
            batch, future = waiting
            if future.done() or want_nodes is not None and not self._stop.is_set() and stopped_by != "time":
                self._apply(batch, future.result())
            else:
                self.runner.cancel(batch)
                self._in_flight.append(future)
        info = self._info(start, searched(), depth_before)
        best, ponder = choose_move(self.tree, board, info, self.params, self._rng)
        return SearchResult(best, ponder, info, tree_full=self.tree.at_limit(), stopped_by=stopped_by)

    def _should_stop(self, limits: Limits, now: float, timer_start: float, budget_ms: float | None,
                     searched: int, depth_before: int, num_legal: int, allowed: set[int] | None) -> str:
        """Why the search should stop now, or '' to go on."""
        if self._stop.is_set():
            return "stop"
        if limits.ponder or limits.infinite:
            return ""
        if limits.nodes is not None and searched >= limits.nodes:
            return "nodes"
        if limits.depth is not None and searched > 0 \
                and (self.runner.sum_depth - depth_before) / searched >= limits.depth:
            return "depth"
        root_mate = self.tree.node_stats(0).mate
        if root_mate > 0 and allowed is None:
            if limits.mate is None or root_mate // 2 <= limits.mate:
                return "mate found"
        if budget_ms is None:
            return ""
        elapsed_ms = (now - timer_start) * 1000.0
        if elapsed_ms >= budget_ms:
            return "time"
        if num_legal == 1 and allowed is None:
            return "only move"
        if self._tablebase_root_decided and searched > 0:  # every child is a tablebase result
            return "tablebase"
        if self.params.smart_pruning_factor > 0 and searched > 0 and elapsed_ms > 0:
            nps = searched / (elapsed_ms / 1000.0)
            remaining = (budget_ms - elapsed_ms) / 1000.0 * nps / self.params.smart_pruning_factor
            visits = sorted((e.visits for e in self.tree.root_edges()), reverse=True)
            if len(visits) >= 2 and visits[0] - visits[1] > remaining:
                return "smart pruning"
        return ""

    def _tablebase_root(self, board: chess.Board, allowed: set[int] | None,
                        budget_ms: float | None) -> set[int] | None:
        """The root moves to search: ``allowed`` (None: all) narrowed to those the tables keep (by DTZ unless
        the time budget is below :data:`TABLEBASE_DTZ_MIN_BUDGET_MS`, then by WDL)."""
        self._tablebase_root_decided = False
        if self.tablebases is None:
            return allowed
        use_dtz = budget_ms is None or budget_ms >= TABLEBASE_DTZ_MIN_BUDGET_MS
        kept = self.tablebases.root_moves(board.copy(stack=False), use_dtz=use_dtz)
        if kept is None:
            return allowed
        self.runner.tb_hits += board.legal_moves.count()
        codes = {_mcts.encode_move(m) for m in kept}
        narrowed = codes & allowed if allowed is not None else codes
        if not narrowed:  # searchmoves holds none of them: search what was asked
            return allowed
        self._tablebase_root_decided = True
        return narrowed

    # ----- results ---------------------------------------------------------------------------

    def _info(self, start: float, searched: int, depth_before: int) -> SearchInfo:
        elapsed = max(1e-6, time.monotonic() - start)
        ranked = ranked_root(self.tree)
        wdl_net = getattr(self.evaluator, "has_wdl", False)
        lines = [pv_line(self.tree, i + 1, e, wdl_net) for i, e in enumerate(ranked[:max(1, self.params.multipv)])]
        stats = [MoveStats(_mcts.decode_move(e.move), e.visits, e.prior,
                           e.value_sum / e.visits if e.visits else None, -e.child_mate) for e in ranked]
        avg_depth = (self.runner.sum_depth - depth_before) / searched if searched else 0
        return SearchInfo(
            depth=max(1, math.ceil(avg_depth)), seldepth=max(1, self.runner.max_depth_seen),
            time_ms=int(elapsed * 1000), nodes=self.tree.node_stats(0).visits, nps=int(searched / elapsed),
            hashfull=self.hashfull(), lines=lines, stats=stats,
            tbhits=self.runner.tb_hits if self.tablebases is not None else None,
        )
