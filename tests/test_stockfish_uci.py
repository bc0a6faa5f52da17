"""The data generator's raw UCI driver labels positions exactly as python-chess's analyse does."""

from __future__ import annotations

import random

import chess
import chess.engine
import pytest

from engine.training import datagen
from engine.training.stockfish_uci import StockfishLabeller, UciError, parse_info

try:
    from engine.training.openings import find_stockfish

    STOCKFISH = find_stockfish()
except FileNotFoundError:  # pragma: no cover - stockfish is a Debian package on the dev machines
    pytest.skip("stockfish is not installed", allow_module_level=True)

NODES, MULTIPV = 2000, 4
MATE_IN_TWO = "r1b1kb1r/pppp1ppp/5q2/4n3/3KP3/2N3PN/PPP4P/R1BQ1B1R b kq - 0 1"


def games() -> list[list[chess.Board]]:
    """Three short games of random moves (one from a FEN with a forced mate), as the boards met."""
    rng = random.Random(5)
    played = []
    for start in (chess.STARTING_FEN, MATE_IN_TWO, chess.STARTING_FEN):
        board, boards = chess.Board(start), []
        while len(boards) < 25 and not board.is_game_over():
            boards.append(board.copy())
            board.push(rng.choice(list(board.legal_moves)))
        played.append(boards)
    return played


def test_labels_match_python_chess() -> None:
    with chess.engine.SimpleEngine.popen_uci(STOCKFISH) as engine:
        engine.configure({"Threads": 1, "Hash": 16, "UCI_ShowWDL": True})
        expected = []
        for boards in games():
            game = object()
            expected += [engine.analyse(b, chess.engine.Limit(nodes=NODES), multipv=MULTIPV, game=game) for b in boards]
    got = []
    with StockfishLabeller(STOCKFISH, 16, MULTIPV) as labeller:
        for boards in games():
            labeller.new_game()
            got += [labeller.analyse(b, NODES) for b in boards]
    boards = [b for g in games() for b in g]
    assert len(got) == len(expected) == len(boards) > 50
    assert any(info[0]["score"].is_mate() for info in got)  # the FEN game's first position
    for board, theirs, ours in zip(boards, expected, got, strict=True):
        assert len(ours) == len(theirs) == min(MULTIPV, board.legal_moves.count())
        assert datagen.label(board, ours, MULTIPV) == datagen.label(board, theirs, MULTIPV), board.fen()


def test_parse_info_keeps_what_a_label_needs() -> None:
    line = "info depth 9 seldepth 12 multipv 2 score cp -31 upperbound wdl 20 700 280 nodes 2100 pv e7e5 g1f3 b8c6"
    info = parse_info(line, chess.BLACK)
    assert info is not None
    assert info["multipv"] == 2 and info["pv"] == [chess.Move.from_uci("e7e5")]
    assert info["score"].relative == chess.engine.Cp(-31) and info["score"].turn == chess.BLACK
    assert info["wdl"].relative == chess.engine.Wdl(20, 700, 280)
    assert parse_info("info depth 9 currmove e2e4 currmovenumber 1", chess.WHITE) is None
    assert parse_info("info string NNUE evaluation using nn-ad9b42354671.nnue enabled", chess.WHITE) is None


def test_an_engine_that_dies_raises_instead_of_hanging() -> None:
    with pytest.raises(UciError, match="ended"):
        StockfishLabeller("/bin/true", 16, MULTIPV)
