"""Tests of the Cython MCTS, its driver and the time manager.

The evaluators are real ones: :class:`engine.UniformEvaluator`, a material-counting evaluator defined
here (values from the planes, no network) and a tiny random network loaded through ``load_model``.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import chess
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import AlphaZeroNet, UniformEvaluator, load_model
from search import Limits, Searcher, SearchParams, SearchResult, _mcts, position_key
from search.timeman import DEFAULT_MOVES_TO_GO, INCREMENT_SHARE, MAX_CLOCK_SHARE, time_budget_ms

EXPANDED, TERMINAL = _mcts.NODE_EXPANDED, _mcts.NODE_TERMINAL

SCHOLARS_MATE_IN_1 = "r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4"  # Qxf7#
LEGALS_MATE_IN_2 = "r2qkb1r/pp2nppp/3p4/2pNN1B1/2BnP3/3P4/PPP2PPP/R2bK2R w KQkq - 1 10"  # Nf6+ gxf6 Bxf7#
BLACK_MATE_IN_2 = "6k1/pp4p1/2p5/2bp4/8/P5Pb/1P3rrP/2BRRN1K b - - 0 1"  # ...Rg1+ Kxg1 Rf1#
ROOK_MATE_IN_2 = "k7/8/2K5/8/8/8/8/7R w - - 0 1"  # Kb6 (or Kc7) and Rh8# / Ra1#
QUEEN_STALEMATE_TRAP = "k7/8/1Q6/8/8/8/8/K7 w - - 0 1"  # Qc7?? stalemates


# ----- evaluators -----------------------------------------------------------------------------------


class MaterialEvaluator:
    """Equal logits; value = tanh(0.2 * material balance) for the side to move, counted on the planes."""

    kind = "material"
    WEIGHTS = np.array([1, -1, 5, -5, 3, -3, 3, -3, 9, -9, 0, 0], dtype=np.float32)  # P p R r B b N n Q q K k

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Zero logits and the material value of each position."""
        counts = planes[:, :12].sum(axis=(2, 3))
        values = np.tanh(0.2 * counts @ self.WEIGHTS).astype(np.float32)
        return np.zeros((len(planes), 4608), dtype=np.float32), values


@pytest.fixture(scope="module")
def net_evaluator(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random network (1 block, 8 filters) loaded through the real fp32 model-file path."""
    torch.manual_seed(7)
    net = AlphaZeroNet(1, 8).eval()
    path = Path(tmp_path_factory.mktemp("net")) / "tiny.pt"
    torch.save(net.state_dict(), path)
    return load_model(path, backend="fp32", threads=1)


def run(board: chess.Board | str, limits: Limits, evaluator=None, **params: object) -> tuple[Searcher, SearchResult]:
    """A fresh searcher's result for ``board`` (the searcher is returned for tree inspection)."""
    if isinstance(board, str):
        board = chess.Board(board)
    searcher = Searcher(evaluator or UniformEvaluator(), SearchParams(**params))  # type: ignore[arg-type]
    return searcher, searcher.search(board, limits)


def edge_stats(searcher: Searcher, node: int = 0) -> dict[chess.Move, tuple[int, float, int]]:
    """(visits, value sum, child node) of each edge of ``node``."""
    return {_mcts.decode_move(e.move): (e.visits, e.value_sum, searcher.tree.child_of(node, e.move))
            for e in searcher.tree.root_edges(node)}


def check_tree(searcher: Searcher, board: chess.Board, node: int = 0, repetitions: list[str] | None = None) -> int:
    """Walk the tree: every expanded node's edges are exactly the legal moves of its position, visits
    add up (node visits = own evaluation + edge visits; edge visits = child visits), terminal nodes are
    mates or draws and every visited repetition is a terminal draw (its FEN goes to ``repetitions``).
    Returns the number of nodes checked."""
    stats = searcher.tree.node_stats(node)
    visits, wsum, mate, state, num_edges = stats.visits, stats.value_sum, stats.mate, stats.state, stats.num_edges
    if node != 0 and visits > 0 and board.is_repetition(2):
        assert state == TERMINAL and wsum == 0.0, board.fen()
        if repetitions is not None:
            repetitions.append(board.fen())
    if state == TERMINAL:
        assert (mate == -1) == board.is_checkmate(), board.fen()
        assert mate == -1 or board.is_stalemate() or board.is_insufficient_material() \
            or board.halfmove_clock >= 100 or board.is_repetition(2), board.fen()
        assert wsum == -visits if mate == -1 else wsum == 0.0
    if state != EXPANDED:
        return 1
    edges = edge_stats(searcher, node)
    assert set(edges) == set(board.legal_moves), (board.fen(), sorted(m.uci() for m in edges))
    assert num_edges == len(edges)
    assert visits == 1 + sum(n for n, _w, _c in edges.values()), board.fen()
    checked = 1
    for move, (n, w, child) in edges.items():
        if child < 0:
            assert n == 0
            continue
        child_stats = searcher.tree.node_stats(child)
        child_visits, child_wsum = child_stats.visits, child_stats.value_sum
        assert n == child_visits, (board.fen(), move.uci())
        assert w == pytest.approx(-child_wsum, abs=1e-6)  # edge values are from the parent's side
        if n > 0:
            board.push(move)
            checked += check_tree(searcher, board, child, repetitions)
            board.pop()
    return checked


def forced_mate_in(board: chess.Board, moves: int) -> bool:
    """Brute force: the side to move mates in at most ``moves`` moves whatever the defence."""
    for move in board.legal_moves:
        board.push(move)
        try:
            if board.is_checkmate():
                return True
            if moves > 1 and not board.is_game_over() and all(
                    _mated_after(board, reply, moves - 1) for reply in list(board.legal_moves)):
                return True
        finally:
            board.pop()
    return False


def _mated_after(board: chess.Board, reply: chess.Move, moves: int) -> bool:
    board.push(reply)
    try:
        return forced_mate_in(board, moves)
    finally:
        board.pop()


# ----- keys ----------------------------------------------------------------------------------------


def test_position_keys_distinguish_far_apart_squares() -> None:
    """Python hashes ints modulo 2**61 - 1: a rook on h8 and one on c1 must still get different keys."""
    on_c1 = chess.Board("8/k7/2K5/8/8/8/8/2R5 w - - 0 1")
    on_h8 = chess.Board("7R/k7/2K5/8/8/8/8/8 w - - 0 1")
    assert position_key(on_c1) != position_key(on_h8)
    for a, b in [("a1", "f8"), ("b1", "g8"), ("c1", "h8")]:
        first = chess.Board("4k3/8/8/8/8/8/8/4K3 w - - 0 1")
        second = first.copy()
        first.set_piece_at(chess.parse_square(a), chess.Piece(chess.KNIGHT, chess.WHITE))
        second.set_piece_at(chess.parse_square(b), chess.Piece(chess.KNIGHT, chess.WHITE))
        assert position_key(first) != position_key(second)
    # and the key follows the position, not the move order
    one, two = chess.Board(), chess.Board()
    for move in ("g1f3", "g8f6", "b1c3"):
        one.push_uci(move)
    for move in ("b1c3", "g8f6", "g1f3"):
        two.push_uci(move)
    assert position_key(one) == position_key(two)
    two.turn = not two.turn
    assert position_key(one) != position_key(two)


def test_tree_edges_match_the_positions(net_evaluator) -> None:
    """Every expanded node holds exactly its position's legal moves (transpositions through the cache)."""
    for fen, evaluator in [(ROOK_MATE_IN_2, UniformEvaluator()), (chess.STARTING_FEN, net_evaluator),
                           ("8/k7/8/3K4/8/8/8/2R5 w - - 0 1", UniformEvaluator())]:
        searcher, result = run(fen, Limits(nodes=3000), evaluator, minibatch_size=16)
        assert searcher.runner.cache_hits > 0 or fen == ROOK_MATE_IN_2
        assert check_tree(searcher, chess.Board(fen)) > 100 or result.stopped_by == "mate found"


# ----- mates -----------------------------------------------------------------------------------------


def test_mate_in_one() -> None:
    searcher, result = run(SCHOLARS_MATE_IN_1, Limits(nodes=2000))
    assert result.best_move == chess.Move.from_uci("h5f7")
    assert result.info.lines[0].score.uci() == "mate 1"
    assert result.info.lines[0].score.mate == 1
    assert result.stopped_by == "mate found"


@pytest.mark.parametrize("fen", [LEGALS_MATE_IN_2, BLACK_MATE_IN_2, ROOK_MATE_IN_2])
def test_mate_in_two(fen: str) -> None:
    board = chess.Board(fen)
    assert not forced_mate_in(board, 1) and forced_mate_in(board, 2)  # the position is what it claims
    searcher, result = run(board, Limits(nodes=20_000))
    assert result.stopped_by == "mate found"
    line = result.info.lines[0]
    assert line.score.uci() == "mate 2"
    assert result.best_move is not None and line.pv[0] == result.best_move
    board.push(result.best_move)
    assert all(_mated_after(board, reply, 1) for reply in list(board.legal_moves))  # a real mate in 2
    board.pop()
    check_tree(searcher, chess.Board(fen))


def test_getting_mated_is_reported_negative() -> None:
    board = chess.Board("6k1/5ppp/8/8/8/8/5PPP/3R2K1 b - - 0 1")  # white threatens Rd8#
    searcher, result = run(board, Limits(nodes=3000))
    stats = {s.move: s for s in result.info.stats}
    # ...Kh8?? walks into Rd8#: proven lost (mated two plies later) and not chosen
    losing = stats[chess.Move.from_uci("g8h8")]
    assert losing.visits > 0 and losing.mate_plies == -2
    assert result.best_move != chess.Move.from_uci("g8h8")
    assert all(s.mate_plies == 0 for move, s in stats.items() if move != chess.Move.from_uci("g8h8"))
    assert result.info.lines[0].score.mate is None


def test_forced_loss_scores_negative_mate() -> None:
    board = chess.Board(LEGALS_MATE_IN_2)
    board.push_uci("d5f6")  # every black reply allows mate next move
    searcher, result = run(board, Limits(nodes=5000))
    assert result.info.lines[0].score.uci() == "mate -1"
    assert result.info.lines[0].q == -1.0
    assert all(s.mate_plies == -2 for s in result.info.stats)


# ----- draws -----------------------------------------------------------------------------------------


def test_no_legal_moves() -> None:
    for fen in ("7k/5Q2/6K1/8/8/8/8/8 b - - 0 1",  # stalemate
                "7k/6Q1/6K1/8/8/8/8/8 b - - 0 1"):  # checkmate
        searcher, result = run(fen, Limits(nodes=100))
        assert result.best_move is None and result.ponder_move is None
        assert result.info.lines == []


def test_stalemate_is_a_draw_and_avoided_when_winning() -> None:
    board = chess.Board(QUEEN_STALEMATE_TRAP)
    stalemating = set()
    for move in board.legal_moves:
        board.push(move)
        if board.is_stalemate():
            stalemating.add(move)
        board.pop()
    assert chess.Move.from_uci("b6c7") in stalemating
    searcher, result = run(board, Limits(nodes=1500), MaterialEvaluator())
    edges = edge_stats(searcher)
    for move in stalemating:
        n, w, child = edges[move]
        assert n > 0, f"{move} was never tried"
        assert w == 0.0  # every visit of a stalemate scores exactly a draw
        assert searcher.tree.node_stats(child).state == TERMINAL
    winning = [w / n for move, (n, w, _c) in edges.items() if move not in stalemating and n > 0]
    assert sum(q > 0.5 for q in winning) >= 10  # a queen up: tanh(0.2 * 9) ~ 0.95 unless the queen hangs
    assert result.best_move not in stalemating
    assert result.info.lines[0].q > 0.5


def knight_shuffle(moves: int) -> chess.Board:
    """White (a queen up) and black shuffle their knights: Nf3 Nf6 Ng1 Ng8 ..., ``moves`` plies."""
    board = chess.Board("4k1n1/8/8/8/8/8/8/3QK1N1 w - - 0 1")
    for uci in ["g1f3", "g8f6", "f3g1", "f6g8"] * 3:
        if len(board.move_stack) == moves:
            break
        board.push_uci(uci)
    return board


def test_losing_side_takes_the_repetition() -> None:
    board = knight_shuffle(7)  # black to move; ...Ng8 repeats the position after 2...Ng8 / the start
    repeat = chess.Move.from_uci("f6g8")
    board.push(repeat)
    assert board.is_repetition(2)
    board.pop()
    searcher, result = run(board, Limits(nodes=1500), MaterialEvaluator())
    n, w, _child = edge_stats(searcher)[repeat]
    assert n > 0 and w == 0.0
    assert result.best_move == repeat
    assert abs(result.info.lines[0].q) < 1e-9
    others = [s.q for s in result.info.stats if s.move != repeat and s.visits > 0]
    assert others and max(others) < -0.5


def test_winning_side_avoids_the_repetition() -> None:
    board = knight_shuffle(6)  # white to move; Ng1 repeats the position after 2.Ng1
    repeat = chess.Move.from_uci("f3g1")
    searcher, result = run(board, Limits(nodes=1500), MaterialEvaluator())
    n, w, _child = edge_stats(searcher)[repeat]
    assert n > 0 and w == 0.0
    assert result.best_move != repeat
    # the same move without the game history is not a draw
    fresh = chess.Board(board.fen())
    searcher, _ = run(fresh, Limits(nodes=1500), MaterialEvaluator())
    n, w, _child = edge_stats(searcher)[repeat]
    assert n > 0 and w / n > 0.5


def test_repetition_inside_the_tree_is_a_draw() -> None:
    """Without game history, going back and forth inside the tree is scored as a draw."""
    board = chess.Board("k7/p7/P7/8/8/8/8/K6N w - - 0 1")  # kings and a knight: few moves, many repetitions
    searcher, _ = run(board, Limits(nodes=4000))
    repetitions: list[str] = []
    check_tree(searcher, board, repetitions=repetitions)
    assert len(repetitions) > 10


# ----- bookkeeping -----------------------------------------------------------------------------------


def test_visit_counts_add_up(net_evaluator) -> None:
    board = chess.Board("r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3")
    searcher, result = run(board, Limits(nodes=2500), net_evaluator)
    assert result.info.nodes == 2500 == searcher.tree.node_stats(0).visits
    assert sum(s.visits for s in result.info.stats) == 2499
    assert check_tree(searcher, board) > 500


def test_nodes_limit_is_exact() -> None:
    """A fresh tree searches exactly ``nodes`` playouts, also where terminals and cache hits abound."""
    for fen in (chess.STARTING_FEN, BLACK_MATE_IN_2, "8/8/8/4k3/8/8/3K4/8 w - - 0 1", ROOK_MATE_IN_2):
        for nodes in (1, 7, 33, 500, 1001):
            searcher, result = run(fen, Limits(nodes=nodes))
            if result.stopped_by == "mate found":
                assert result.info.nodes <= nodes
            else:
                assert result.stopped_by == "nodes"
                assert result.info.nodes == nodes, (fen, nodes)


def test_same_settings_same_search(net_evaluator) -> None:
    board = chess.Board("r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3")
    for evaluator in (UniformEvaluator(), net_evaluator):
        results = [run(board, Limits(nodes=1200), evaluator)[1] for _ in range(2)]
        first, second = results
        assert first.best_move == second.best_move
        assert first.info.nodes == second.info.nodes == 1200
        assert [(s.move, s.visits) for s in first.info.stats] == [(s.move, s.visits) for s in second.info.stats]
        assert first.info.lines[0].pv == second.info.lines[0].pv


def test_tree_reuse_keeps_the_subtree(net_evaluator) -> None:
    board = chess.Board()
    searcher = Searcher(net_evaluator, SearchParams())
    first = searcher.search(board, Limits(nodes=3000))
    assert searcher.reused_visits == 0
    ours, theirs = first.info.lines[0].pv[:2]
    child = searcher.tree.child_of(0, _mcts.encode_move(ours))
    grandchild = searcher.tree.child_of(child, _mcts.encode_move(theirs))
    expected = searcher.tree.node_stats(grandchild).visits
    assert expected >= 2  # an expanded subtree
    board.push(ours)
    board.push(theirs)
    second = searcher.search(board, Limits(nodes=500))
    assert searcher.reused_visits == expected
    assert second.info.nodes == expected + 500
    check_tree(searcher, board)
    # an unrelated position starts afresh
    searcher.search(chess.Board(QUEEN_STALEMATE_TRAP), Limits(nodes=50))
    assert searcher.reused_visits == 0
    searcher.close()


def test_ram_limit_bounds_the_tree_and_the_search_goes_on() -> None:
    """At RamLimitMb the tree stops growing inside the limit; the search keeps refining until its own limit."""
    limit = 1024 * 1024
    searcher, result = run(chess.STARTING_FEN, Limits(nodes=150_000), ram_limit_mb=1)
    assert result.tree_full and result.stopped_by == "nodes"
    assert result.info.nodes == 150_000 and result.info.hashfull == 1000
    cache_bytes = searcher.runner.cache.size * _mcts.NN_CACHE_ENTRY_BYTES
    assert cache_bytes <= limit // 4
    assert searcher.tree.allocated_bytes() + cache_bytes <= limit + 4096
    assert searcher.tree.memory_bytes() >= limit - cache_bytes - 64 * 1024  # it did fill up
    assert result.best_move in chess.Board().legal_moves
    assert sum(e.visits for e in searcher.tree.root_edges()) == 150_000 - 1
    # the same position again: the full tree still takes playouts
    again = searcher.search(chess.Board(), Limits(nodes=20_000))
    assert again.tree_full and again.info.nodes == 170_000
    assert searcher.tree.allocated_bytes() + cache_bytes <= limit + 4096
    # a larger limit lets the kept tree grow again
    used = searcher.tree.memory_bytes()
    searcher.params.ram_limit_mb = 2
    bigger = searcher.search(chess.Board(), Limits(nodes=150_000))
    assert searcher.tree.memory_bytes() > used + limit // 2
    assert bigger.tree_full and searcher.tree.allocated_bytes() <= 2 * limit
    searcher.close()


def test_nn_cache_gives_the_priors_of_a_fresh_evaluation(net_evaluator) -> None:
    """A position expanded from the NN cache gets the priors and value a fresh network call gives."""
    board = chess.Board("r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3")
    fresh = run(board, Limits(nodes=2), net_evaluator, policy_temperature=0.7)[1]
    searcher = Searcher(net_evaluator, SearchParams(policy_temperature=0.7))
    searcher.search(board, Limits(nodes=300))
    searcher.search(chess.Board(), Limits(nodes=2))  # another root: the tree is dropped, the cache kept
    hits = searcher.runner.cache_hits
    cached = searcher.search(board, Limits(nodes=2))
    assert searcher.runner.cache_hits > hits and len(searcher.runner.cache) > 0
    want = {s.move: s.prior for s in fresh.info.stats}
    got = {s.move: s.prior for s in cached.info.stats}
    assert got.keys() == want.keys()
    for move, prior in want.items():
        assert got[move] == pytest.approx(prior, rel=2e-3, abs=1e-6)
    searcher.close()


def test_tree_results_are_named_records() -> None:
    searcher, _ = run(chess.STARTING_FEN, Limits(nodes=50))
    root = searcher.tree.node_stats(0)
    assert root.expanded and root.state == EXPANDED and root.visits == 50 and root.num_edges == 20
    edges = searcher.tree.root_edges()
    assert sum(e.visits for e in edges) == 49 and all(0 < e.prior < 1 for e in edges)
    best = searcher.tree.best_child_move(0)
    assert best.move == max(edges, key=lambda e: e.visits).move and best.child > 0
    assert searcher.tree.best_child_move(best.child).move >= -1


def test_stop_from_another_thread_is_prompt(net_evaluator) -> None:
    for evaluator in (UniformEvaluator(), net_evaluator):
        searcher = Searcher(evaluator, SearchParams())
        done: dict[str, object] = {}

        def search(searcher: Searcher, done: dict[str, object]) -> None:
            done["result"] = searcher.search(chess.Board(), Limits(infinite=True))
            done["at"] = time.monotonic()

        thread = threading.Thread(target=search, args=(searcher, done))
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive()  # infinite: it does not stop by itself
        stopped_at = time.monotonic()
        searcher.stop()
        thread.join(timeout=5.0)
        assert not thread.is_alive()
        latency = done["at"] - stopped_at  # type: ignore[operator]
        assert latency < 0.1, f"stop took {latency * 1000:.0f} ms"
        result = done["result"]
        assert isinstance(result, SearchResult) and result.stopped_by == "stop"
        assert result.best_move in chess.Board().legal_moves and result.info.nodes > 10
        # the searcher is usable afterwards, and the tree is consistent after the cancelled batch
        after = searcher.search(chess.Board(), Limits(nodes=result.info.nodes + 100))
        assert after.best_move is not None
        check_tree(searcher, chess.Board())
        searcher.close()


# ----- root restrictions and lines ---------------------------------------------------------------------


def test_searchmoves_restricts_the_root() -> None:
    allowed = [chess.Move.from_uci("a2a3"), chess.Move.from_uci("h2h4")]
    searcher, result = run(chess.STARTING_FEN, Limits(nodes=400, searchmoves=allowed), MaterialEvaluator())
    assert result.best_move in allowed
    assert {s.move for s in result.info.stats} == set(allowed)
    assert all(s.visits > 50 for s in result.info.stats)
    # a restriction that leaves out the mate: no mate score, no early stop
    mate = chess.Move.from_uci("h5f7")
    others = [chess.Move.from_uci("h5h7"), chess.Move.from_uci("d2d3")]
    searcher, result = run(SCHOLARS_MATE_IN_1, Limits(nodes=300, searchmoves=others))
    assert result.best_move in others and result.best_move != mate
    assert result.stopped_by == "nodes"
    assert {s.move for s in result.info.stats} == set(others)


def test_multipv_gives_distinct_lines(net_evaluator) -> None:
    searcher, result = run(chess.STARTING_FEN, Limits(nodes=800), net_evaluator, multipv=3)
    lines = result.info.lines
    assert [line.multipv for line in lines] == [1, 2, 3]
    assert len({line.pv[0] for line in lines}) == 3
    assert lines[0].visits >= lines[1].visits >= lines[2].visits
    assert result.best_move == lines[0].pv[0]
    for line in lines:
        board = chess.Board()
        for move in line.pv:  # every PV is a legal line
            assert move in board.legal_moves
            board.push(move)


def test_time_limited_search_returns_in_time() -> None:
    start = time.monotonic()
    searcher, result = run(chess.STARTING_FEN, Limits(movetime=300), move_overhead_ms=50)
    elapsed = time.monotonic() - start
    assert result.stopped_by in ("time", "smart pruning")
    assert elapsed < 0.3 + 0.5  # generous: a loaded machine
    assert result.best_move is not None


# ----- time manager ------------------------------------------------------------------------------------


def test_movetime_less_overhead() -> None:
    assert time_budget_ms(Limits(movetime=1000), chess.WHITE, 100) == 900
    assert time_budget_ms(Limits(movetime=1000, wtime=10), chess.WHITE, 0) == 1000  # movetime wins
    assert time_budget_ms(Limits(movetime=50), chess.BLACK, 100) == 1  # never below 1 ms


def test_no_clock_means_no_budget() -> None:
    assert time_budget_ms(Limits(), chess.WHITE, 100) is None
    assert time_budget_ms(Limits(nodes=1000), chess.WHITE, 100) is None
    assert time_budget_ms(Limits(infinite=True, wtime=1000), chess.WHITE, 100) is None


def test_clock_with_increment() -> None:
    limits = Limits(wtime=60_000, btime=30_000, winc=1000, binc=0)
    expected_white = (60_000 - 100) / DEFAULT_MOVES_TO_GO + INCREMENT_SHARE * 1000
    assert time_budget_ms(limits, chess.WHITE, 100) == pytest.approx(expected_white)
    assert time_budget_ms(limits, chess.BLACK, 100) == pytest.approx((30_000 - 100) / DEFAULT_MOVES_TO_GO)


def test_movestogo() -> None:
    assert time_budget_ms(Limits(wtime=10_000, movestogo=10), chess.WHITE, 50) == pytest.approx(995)
    # the last move before the time control may use most, but not all, of the clock
    last = time_budget_ms(Limits(btime=10_000, movestogo=1), chess.BLACK, 50)
    assert last is not None and 0.5 * 9950 <= last < 9950


def test_huge_increment_is_capped() -> None:
    budget = time_budget_ms(Limits(wtime=2_000, winc=10_000), chess.WHITE, 100)
    assert budget == pytest.approx(MAX_CLOCK_SHARE * 1900)


@settings(max_examples=300, deadline=None)
@given(
    left=st.integers(min_value=0, max_value=10_000_000),
    inc=st.one_of(st.none(), st.integers(min_value=0, max_value=100_000)),
    movestogo=st.one_of(st.none(), st.integers(min_value=0, max_value=200)),
    overhead=st.integers(min_value=0, max_value=5_000),
    white=st.booleans(),
)
def test_budget_is_positive_and_within_the_clock(left: int, inc: int | None, movestogo: int | None,
                                                 overhead: int, white: bool) -> None:
    limits = Limits(wtime=left, btime=left, winc=inc, binc=inc, movestogo=movestogo)
    budget = time_budget_ms(limits, chess.WHITE if white else chess.BLACK, overhead)
    assert budget is not None
    assert budget >= 1.0
    assert budget <= max(1.0, left - overhead)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_policy_temperature_scales_the_priors(net_evaluator, temperature: float) -> None:
    """Root priors are the softmax of logits / PolicyTemperature over the legal moves."""
    from engine import encode_position
    from engine.priors import move_priors

    board = chess.Board("r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3")
    logits, _ = net_evaluator.evaluate(encode_position(board)[None])
    expected = move_priors(board, logits[0] / temperature)
    _, result = run(board, Limits(nodes=2), net_evaluator, policy_temperature=temperature)
    got = {s.move: s.prior for s in result.info.stats}
    assert got.keys() == expected.keys()
    for move, prior in expected.items():
        assert got[move] == pytest.approx(prior, rel=1e-4, abs=1e-6)


def test_changing_the_policy_temperature_drops_stale_priors(net_evaluator) -> None:
    """The same position searched again after PolicyTemperature changes shows the new priors."""
    board = chess.Board()
    searcher = Searcher(net_evaluator, SearchParams())
    flat = searcher.search(board, Limits(nodes=50))
    searcher.params.policy_temperature = 5.0
    flatter = searcher.search(board, Limits(nodes=50))
    searcher.close()
    spread = [max(s.prior for s in r.info.stats) - min(s.prior for s in r.info.stats) for r in (flat, flatter)]
    assert spread[1] < spread[0]
    fresh = run(board, Limits(nodes=50), net_evaluator, policy_temperature=5.0)[1]
    assert [s.prior for s in flatter.info.stats] == [s.prior for s in fresh.info.stats]


def test_slow_mover_scales_the_clock_share_only() -> None:
    """SlowMover multiplies the planned share of the clock, not the increment, the cap or movetime."""
    limits = Limits(wtime=30_000, winc=1_000)
    base = time_budget_ms(limits, chess.WHITE, 0)
    assert time_budget_ms(limits, chess.WHITE, 0, slow_mover=1.5) == pytest.approx(
        1.5 * 30_000 / DEFAULT_MOVES_TO_GO + INCREMENT_SHARE * 1_000)
    assert base == pytest.approx(30_000 / DEFAULT_MOVES_TO_GO + INCREMENT_SHARE * 1_000)
    assert time_budget_ms(Limits(wtime=1_000, movestogo=10), chess.WHITE, 0, slow_mover=10.0) == MAX_CLOCK_SHARE * 1_000
    assert time_budget_ms(Limits(movetime=500), chess.WHITE, 0, slow_mover=3.0) == 500


def _chi_square_bound(dof: int, z: float = 3.72) -> float:
    """Upper chi-square quantile for ``dof`` degrees of freedom at about p = 1e-4 (Wilson-Hilferty)."""
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_temperature_picks_follow_visits_to_the_one_over_t(net_evaluator, temperature: float) -> None:
    """Over many searches the chosen moves follow visits^(1/T) (chi-square), drawn from one seeded stream."""
    board = chess.Board("r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3")
    searcher = Searcher(net_evaluator, SearchParams(temperature=temperature, seed=11, minibatch_size=16))
    observed: dict[chess.Move, int] = {}
    expected: dict[chess.Move, float] = {}
    searches = 400
    for _ in range(searches):
        searcher.new_game()
        result = searcher.search(board, Limits(nodes=120))
        weights = {s.move: s.visits ** (1 / temperature) for s in result.info.stats if s.visits > 0}
        total = sum(weights.values())
        for move, w in weights.items():
            expected[move] = expected.get(move, 0.0) + w / total
        observed[result.best_move] = observed.get(result.best_move, 0) + 1
    searcher.close()
    assert set(observed) <= set(expected)
    # pool the rare moves into one bin so that every bin expects at least 5 picks
    bins = [(observed.get(m, 0), e) for m, e in expected.items() if e >= 5]
    rare = [(observed.get(m, 0), e) for m, e in expected.items() if e < 5]
    if sum(e for _, e in rare) >= 5:
        bins.append((sum(o for o, _ in rare), sum(e for _, e in rare)))
    assert len(bins) >= 3
    chi2 = sum((o - e) ** 2 / e for o, e in bins)
    assert chi2 < _chi_square_bound(len(bins) - 1), (chi2, bins)
    assert max(observed.values()) < searches  # not the same pick every time


def test_temperature_is_seeded_once_per_seed(net_evaluator) -> None:
    """The same Seed gives the same sequence of picks; the generator is not reseeded at each search."""
    board = chess.Board()

    def picks(seed: int) -> list[chess.Move]:
        searcher = Searcher(net_evaluator, SearchParams(temperature=1.0, seed=seed))
        moves = []
        for _ in range(30):
            searcher.new_game()
            moves.append(searcher.search(board, Limits(nodes=60)).best_move)
        searcher.close()
        return moves

    first = picks(5)
    assert first == picks(5)
    assert len(set(first)) > 1


def test_temperature_zero_plays_the_most_visited_move(net_evaluator) -> None:
    searcher = Searcher(net_evaluator, SearchParams(temperature=0.0))
    boards = [chess.Board(), chess.Board("r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3"),
              chess.Board("r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R2QKB1R w KQ - 0 9")]
    for i in range(30):
        board = boards[i % len(boards)]
        searcher.new_game()
        result = searcher.search(board, Limits(nodes=40 + 7 * i))
        most = max(s.visits for s in result.info.stats)
        assert result.best_move in [s.move for s in result.info.stats if s.visits == most]
    searcher.close()
