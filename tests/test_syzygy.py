"""Syzygy tablebases (``SyzygyPath``): the prober, the tree's tablebase leaves, DTZ at the root, and games.

The tables are python-chess's 3-4-piece ones (``tests/syzygy_tables.py`` fetches them once); the tests
skip, saying why, when they cannot be had. The games put the installed ``azengine`` (bundled network)
against Stockfish through python-chess from won KRvK and KQvKR positions: every game must end in the
engine's mate before the 50-move rule or a repetition could end it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import chess
import chess.engine
import chess.syzygy
import numpy as np
import pytest
from syzygy_tables import TablesUnavailable, syzygy_dir
from uci_client import RawEngine, engine_command

from engine import UniformEvaluator
from search import Limits, Searcher, SearchParams
from search.tablebase import Tablebases

STOCKFISH = shutil.which("stockfish") or ("/usr/games/stockfish" if shutil.which("/usr/games/stockfish") else None)
LOAD_S = 120.0
MOVE_S = 60.0

# won for the side to move, no capture on the first move, DTZ 21 to 53 plies
WON_POSITIONS = [
    "8/8/5k2/K7/8/8/8/3R4 w - - 0 1",      # KRvK
    "8/1k6/8/8/8/4R2K/8/8 w - - 0 1",      # KRvK
    "8/8/6r1/6k1/8/8/8/2K5 b - - 0 1",     # KRvK, black wins
    "8/8/Q7/7k/8/6r1/3K4/8 w - - 0 1",     # KQvKR
    "7q/7k/8/5R2/4K3/8/8/8 b - - 0 1",     # KQvKR, black wins
]


@pytest.fixture(scope="module")
def tables_dir() -> Path:
    try:
        return syzygy_dir()
    except TablesUnavailable as exc:
        pytest.skip(f"no Syzygy tables: {exc}")


@pytest.fixture(scope="module")
def tablebases(tables_dir: Path) -> Iterator[Tablebases]:
    opened = Tablebases.open(str(tables_dir))
    assert opened.tablebases is not None, opened.message
    yield opened.tablebases
    opened.tablebases.close()


def test_open_reports_what_it_found(tables_dir: Path, tmp_path: Path) -> None:
    opened = Tablebases.open(f"{tmp_path / 'missing'}:{tables_dir}")
    assert opened.tablebases is not None and opened.tablebases.max_pieces >= 4
    assert "missing" in opened.message  # the bad directory is named, the good one used
    opened.tablebases.close()
    for path in (str(tmp_path / "missing"), str(tmp_path), ""):
        nothing = Tablebases.open(path)
        assert nothing.tablebases is None and "tablebases off" in nothing.message


def test_wdl_values(tablebases: Tablebases) -> None:
    assert tablebases.wdl_value(chess.Board(WON_POSITIONS[0])) == 1
    assert tablebases.wdl_value(chess.Board("8/8/8/8/8/2k5/8/K1R5 b - - 0 1")) == -1
    assert tablebases.wdl_value(chess.Board("8/8/8/8/8/2k5/8/K1b5 w - - 0 1")) == 0
    assert tablebases.wdl_value(chess.Board("8/8/8/8/8/2k5/8/K1R1R3 w - - 0 1")) is None  # 5 pieces


@pytest.mark.parametrize("fen", WON_POSITIONS)
def test_root_keeps_the_fastest_wins(tablebases: Tablebases, fen: str) -> None:
    board = chess.Board(fen)
    kept = tablebases.root_moves(board)
    assert kept
    prober = tablebases.prober
    plies = {}
    for move in board.legal_moves:
        board.push(move)
        if prober.probe_wdl(board) == -2:
            plies[move] = abs(prober.probe_dtz(board))
        board.pop()
    fastest = min(plies.values())
    assert all(plies.get(move) == fastest for move in kept), (kept, plies)
    # by WDL alone (short time budgets) every winning move stays
    assert set(tablebases.root_moves(board, use_dtz=False)) == set(plies)


def test_root_takes_a_winning_capture_and_holds_a_draw(tablebases: Tablebases) -> None:
    board = chess.Board("8/8/5k2/3r4/8/8/K7/3Q4 w - - 0 1")  # Qxd5 wins at once
    assert tablebases.root_moves(board) == [chess.Move.from_uci("d1d5")]
    # KRvKR: every move that does not hang the rook draws, and all of them are kept
    board = chess.Board("8/8/3k4/8/8/3r4/8/R3K3 w - - 0 1")
    kept = set(tablebases.root_moves(board))
    prober = tablebases.prober
    draws = set()
    for move in board.legal_moves:
        board.push(move)
        if prober.probe_wdl(board) in (-1, 0, 1):
            draws.add(move)
        board.pop()
    assert kept == draws and draws


class CountingEvaluator(UniformEvaluator):
    """Uniform priors; remembers the piece count of every position it was asked to evaluate."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[int] = []

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.pieces.extend(int(n) for n in planes[:, :12].sum(axis=(1, 2, 3)))
        return super().evaluate(planes)


def test_tree_scores_tablebase_positions_without_the_network(tablebases: Tablebases) -> None:
    """Five pieces at the root: the captures lead into the tables, which answer instead of the network."""
    board = chess.Board("8/8/5k2/3r4/8/8/K7/3Q3R w - - 0 1")
    evaluator = CountingEvaluator()
    searcher = Searcher(evaluator, SearchParams(smart_pruning_factor=0.0, minibatch_size=8))
    searcher.set_tablebases(tablebases)
    try:
        result = searcher.search(board, Limits(nodes=400))
    finally:
        searcher.close()
    assert result.info.tbhits and result.info.tbhits > 0
    assert evaluator.pieces and min(evaluator.pieces) > tablebases.max_pieces
    assert result.best_move == chess.Move.from_uci("d1d5")  # the table says the capture wins
    assert result.info.lines[0].score.cp is not None and result.info.lines[0].score.cp > 1000


def test_without_tablebases_tbhits_is_not_reported() -> None:
    searcher = Searcher(UniformEvaluator(), SearchParams())
    try:
        assert searcher.search(chess.Board(WON_POSITIONS[0]), Limits(nodes=50)).info.tbhits is None
    finally:
        searcher.close()


@pytest.fixture(scope="module")
def azengine(tables_dir: Path) -> Iterator[chess.engine.SimpleEngine]:
    eng = chess.engine.SimpleEngine.popen_uci(engine_command(), timeout=LOAD_S)
    eng.configure({"SyzygyPath": str(tables_dir)})
    yield eng
    eng.quit()


def test_info_reports_tbhits(azengine: chess.engine.SimpleEngine) -> None:
    info = azengine.analyse(chess.Board(WON_POSITIONS[3]), chess.engine.Limit(nodes=100))
    assert info.get("tbhits", 0) > 0


@pytest.mark.skipif(STOCKFISH is None, reason="Stockfish is not installed")
@pytest.mark.parametrize("fen", WON_POSITIONS)
def test_wins_won_endings_against_stockfish(azengine: chess.engine.SimpleEngine, fen: str) -> None:
    board = chess.Board(fen)
    ours = board.turn
    with chess.engine.SimpleEngine.popen_uci(STOCKFISH, timeout=LOAD_S) as stockfish:
        while not board.is_game_over(claim_draw=True) and board.ply() < 300:
            player, limit = (azengine, chess.engine.Limit(nodes=100)) if board.turn == ours \
                else (stockfish, chess.engine.Limit(time=0.05))
            move = player.play(board, limit).move
            assert move in board.legal_moves
            board.push(move)
    outcome = board.outcome(claim_draw=True)
    assert outcome is not None and outcome.winner == ours, f"{outcome} after {board.ply()} plies: {board.fen()}"


def test_bad_path_keeps_the_engine_running() -> None:
    with RawEngine() as eng:
        eng.handshake(LOAD_S)
        eng.send("setoption name SyzygyPath value /no/such/syzygy/dir", "isready")
        _, _, before = eng.wait_for("readyok", LOAD_S)
        notes = [line for line in before if line.startswith("info string") and "SyzygyPath" in line]
        assert len(notes) == 1 and "/no/such/syzygy/dir" in notes[0], before
        board = chess.Board(WON_POSITIONS[0])
        eng.send(f"position fen {board.fen()}", "go nodes 50")
        _, line, before = eng.wait_for("bestmove", MOVE_S)
        assert chess.Move.from_uci(line.split()[1]) in board.legal_moves
        assert not any("tbhits" in info for info in before)
        assert eng.bad_stdout_lines() == []
