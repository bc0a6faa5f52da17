"""Maia-1900 under azengine against lc0 itself: move probabilities and W/D/L at one node (the network on
encode_lc0's planes, and azengine's search with its C-built planes and game history), the evaluator's
input format, and azengine playing the network over UCI."""

from __future__ import annotations

import re
import subprocess

import chess
import chess.engine
import numpy as np
import pytest
import torch

from engine import encode_batch
from engine.inputs import encode_for
from engine.interface import LC0_INPUT
from engine.nets.lc0 import encode_lc0_batch, move_to_lc0_index, read_lc0
from engine.nets.lc0.network import build_lc0_net
from engine.positions import read_fens
from search.mcts import Searcher
from search.types import Limits, SearchParams
from tests.lc0_tools import BUILD_HINT, REPO, lc0_binary, maia_path
from tests.uci_client import RawEngine, engine_command

MAIA = maia_path("maia-1900")
LC0 = lc0_binary()
HELDOUT = REPO / "engine" / "data" / "heldout.fen"
POSITIONS = 200
# lc0 prints P in percent with 2 decimals and takes its softmax with an approximate exp (FastExp, about
# 0.1% relative error); W/D/L in permille (`info ... wdl`: W and L rounded, D = 1000 - W - L, so D carries
# both roundings), and the root's W - L with 5 decimals (each unvisited move's "Q:", its first-play urgency).
P_TOLERANCE = 2e-3
WDL_TOLERANCE = np.array([7e-4, 1.2e-3, 7e-4])
Q_TOLERANCE = 3e-5

needs_maia = pytest.mark.skipif(MAIA is None, reason="shared/nets/maia-1900.pb.gz is not here")
needs_lc0 = pytest.mark.skipif(LC0 is None, reason=f"lc0 is not built (no ~/.cache/azengine-tools/bin/lc0); "
                                                   f"{BUILD_HINT}")

_P_LINE = re.compile(r"info string (\S+)\s+\(\s*\d+\s*\)\s+N:.*?\(P:\s*([\d.]+)%\).*?\(Q:\s*(-?[\d.]+)\)")
_WDL = re.compile(r"^info .*\bwdl (\d+) (\d+) (\d+)")


def _positions() -> list[chess.Board]:
    boards = [b for b in read_fens(HELDOUT) if b.legal_moves.count() > 1 and b.is_valid()]
    return boards[:POSITIONS]


@pytest.fixture(scope="module")
def maia() -> torch.nn.Module:
    if MAIA is None:
        pytest.skip("shared/nets/maia-1900.pb.gz is not here")
    return build_lc0_net(read_lc0(MAIA))


class Lc0Process:
    """lc0 as a UCI engine: ``go nodes 1`` with VerboseMoveStats prints each root move's P and Q (at one node
    the root's W - L), UCI_ShowWDL the root's W/D/L.

    PolicyTemperature 1 (lc0's default is 1.359); ScoreType centipawn, because lc0's default WDL_mu passes
    the W/D/L it prints through its WDL rescaling (approximate logs and exps) even with no contempt, as the
    verbose move stats' WL and D always are; no NN cache, because lc0 keys it by the last position alone,
    so the same position reached with another history would be answered from the cache.
    """

    def __init__(self) -> None:
        command = [str(LC0), f"--weights={MAIA}", "--backend=blas", "--threads=1", "--policy-softmax-temp=1.0",
                   "--verbose-move-stats", "--score-type=centipawn", "--nncache=0"]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.send("uci")
        self.wait_for("uciok")
        self.send("setoption name UCI_ShowWDL value true")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, prefix: str) -> list[str]:
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            lines.append(line.strip())
            if line.startswith(prefix):
                return lines
        raise AssertionError(f"lc0 exited before {prefix!r}: {lines[-5:]}")

    def one_node(self, board: chess.Board) -> tuple[dict[chess.Move, float], np.ndarray, float]:
        """lc0's prior of each legal move, its W/D/L and its W - L (side to move) at one node."""
        moves = " ".join(m.uci() for m in board.move_stack)
        self.send(f"position fen {board.root().fen(en_passant='fen')}" + (f" moves {moves}" if moves else ""))
        self.send("go nodes 1")
        priors, wdl, value = {}, None, None
        for line in self.wait_for("bestmove"):
            if (m := _P_LINE.match(line)) and m.group(1) != "node":
                priors[board.parse_uci(m.group(1))] = float(m.group(2)) / 100
                value = float(m.group(3))  # an unvisited move's Q: the first-play urgency, at one node the root's W - L
            if m := _WDL.match(line):
                wdl = np.array([int(m.group(i)) for i in (1, 2, 3)]) / 1000
        assert wdl is not None and value is not None, f"lc0 printed no WDL or value for {board.fen()}"
        return priors, wdl, value

    def close(self) -> None:
        self.send("quit")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _our_priors(net: torch.nn.Module, boards: list[chess.Board]) -> tuple[list[dict[chess.Move, float]], np.ndarray]:
    with torch.inference_mode():
        policy, wdl = net(torch.from_numpy(encode_lc0_batch(boards)))
    priors = []
    for board, logits in zip(boards, policy, strict=True):
        moves = list(board.legal_moves)
        p = torch.softmax(logits[[move_to_lc0_index(board, m) for m in moves]].double(), 0).tolist()
        priors.append(dict(zip(moves, p, strict=True)))
    return priors, torch.softmax(wdl.double(), 1).numpy()


@needs_lc0
@needs_maia
def test_fp32_matches_lc0_at_one_node(maia):
    boards = _positions()
    ours, our_wdl = _our_priors(maia, boards)
    theirs = _lc0_one_node(boards)
    p_errors, wdl_errors, q_errors = [], [], []
    for board, mine, wdl, (their_priors, their_wdl, their_q) in zip(boards, ours, our_wdl, theirs, strict=True):
        assert set(their_priors) == set(board.legal_moves), board.fen()
        p_errors.append(max(abs(mine[m] - their_priors[m]) for m in mine))
        wdl_errors.append(np.abs(wdl - their_wdl))
        q_errors.append(abs(wdl[0] - wdl[2] - their_q))
    print(f"\n{len(boards)} positions: max |P - lc0 P| = {max(p_errors):.2e} (mean of per-position max "
          f"{np.mean(p_errors):.2e}); max |W, D, L - lc0's| = {np.max(wdl_errors, axis=0)}; "
          f"max |(W-L) - lc0 Q| = {max(q_errors):.2e}")
    assert max(p_errors) < P_TOLERANCE
    assert (np.max(wdl_errors, axis=0) < WDL_TOLERANCE).all()
    assert max(q_errors) < Q_TOLERANCE


def _games(net: torch.nn.Module) -> list[chess.Board]:
    """Positions with game history: Maia playing itself (moves sampled, seeded) from the start and from a
    real middlegame, a game that repeats the start position twice, a FEN with an en-passant square."""
    rng = np.random.default_rng(7)
    boards = []
    for start, plies in ((chess.Board(), 40), (read_fens(HELDOUT, limit=1)[0], 16)):
        board = start.copy()
        for _ in range(plies):
            if board.is_game_over():
                break
            moves = list(board.legal_moves)
            with torch.inference_mode():
                logits = net(torch.from_numpy(encode_lc0_batch([board])))[0][0]
            p = torch.softmax(logits[[move_to_lc0_index(board, m) for m in moves]].double(), 0).numpy()
            board.push(moves[rng.choice(len(moves), p=p / p.sum())])
            boards.append(board.copy())
    board = chess.Board()
    for san in ["Nf3", "Nf6", "Ng1", "Ng8"] * 2 + ["e4", "c5", "e5", "d5"]:  # repetitions, then en passant
        board.push_san(san)
        boards.append(board.copy())
    board = chess.Board("rnbqkbnr/pppp1ppp/8/4p3/4P3/8/PPPP1PPP/RNBQKBNR w KQkq e6 0 2")  # FEN fill: the
    boards.append(board.copy())  # copies show the double step undone
    board.push_san("Nf3")
    boards.append(board.copy())
    return boards


def _lc0_one_node(boards: list[chess.Board]) -> list:
    """What lc0 prints after ``go nodes 1`` for each board (priors, W/D/L, Q), from one lc0 process."""
    lc0 = Lc0Process()
    try:
        return [lc0.one_node(b) for b in boards]
    finally:
        lc0.close()


@needs_lc0
@needs_maia
def test_history_matches_lc0(maia):
    """Positions given as moves from their game's start: history slots, flipping, repetitions, rule 50."""
    boards = _games(maia)
    ours, our_wdl = _our_priors(maia, boards)
    theirs = _lc0_one_node(boards)
    p_errors = []
    for board, mine, wdl, (their_priors, their_wdl, their_q) in zip(boards, ours, our_wdl, theirs, strict=True):
        where = f"{board.root().fen()} moves {' '.join(m.uci() for m in board.move_stack)}"
        assert set(their_priors) == set(board.legal_moves), where
        p_errors.append(max(abs(mine[m] - their_priors[m]) for m in mine))
        assert p_errors[-1] < P_TOLERANCE, where
        assert (np.abs(wdl - their_wdl) < WDL_TOLERANCE).all(), where
        assert abs(wdl[0] - wdl[2] - their_q) < Q_TOLERANCE, where
    print(f"\n{len(boards)} positions with history: max |P - lc0 P| = {max(p_errors):.2e}")


PROMOTIONS = "r3k2r/pPpp1ppp/8/8/8/8/PPPP1PpP/R3K2R {} KQkq - 0 1"


def _search_one_node(backend: str, boards: list[chess.Board]) -> list[tuple[dict[chess.Move, float], np.ndarray]]:
    """azengine's root priors and W/D/L after one node, each board searched with its move stack."""
    from engine.loader import load_model

    searcher = Searcher(load_model(MAIA, backend=backend, threads=1), SearchParams(nn_cache_size=0))
    out = []
    try:
        for board in boards:
            result = searcher.search(board, Limits(nodes=1))
            root = searcher.tree.node_stats(0)
            q, d = root.value_sum / root.visits, root.draw_sum / root.visits
            out.append(({s.move: s.prior for s in result.info.stats}, np.array([(1 - d + q) / 2, d, (1 - d - q) / 2])))
    finally:
        searcher.close()
    return out


@needs_lc0
@needs_maia
def test_search_at_one_node_matches_lc0_with_history(maia):
    """``go nodes 1`` through azengine's search (planes built in C from the game's moves) against lc0 given
    the same moves: priors of every legal move, underpromotions each their own, and W/D/L."""
    boards = _games(maia) + [chess.Board(PROMOTIONS.format(turn)) for turn in "wb"]
    promoting = chess.Board(PROMOTIONS.format("w"))
    promoting.push_san("Kd1")  # black to move, white without castling rights; history of one ply
    boards.append(promoting)
    ours = _search_one_node("fp32", boards)
    theirs = _lc0_one_node(boards)
    p_errors = []
    for board, (priors, wdl), (their_priors, their_wdl, their_q) in zip(boards, ours, theirs, strict=True):
        where = f"{board.root().fen()} moves {' '.join(m.uci() for m in board.move_stack)}"
        assert set(priors) == set(their_priors) == set(board.legal_moves), where
        p_errors.append(max(abs(priors[m] - their_priors[m]) for m in priors))
        assert p_errors[-1] < P_TOLERANCE, where
        assert (np.abs(wdl - their_wdl) < WDL_TOLERANCE).all(), where
        assert abs(wdl[0] - wdl[2] - their_q) < Q_TOLERANCE, where
    print(f"\n{len(boards)} positions searched with history: max |P - lc0 P| = {max(p_errors):.2e}")
    for (priors, _), board in zip(ours[-3:], boards[-3:], strict=True):  # each underpromotion its own prior
        for move in (m for m in board.legal_moves if m.promotion == chess.QUEEN):
            under = [priors[chess.Move(move.from_square, move.to_square, p)]
                     for p in (chess.KNIGHT, chess.BISHOP, chess.ROOK)]
            assert len(set(under)) == 3, (board.fen(), move.uci(), under)


_OUR_P_LINE = re.compile(r"info string (\S+)\s+\(N:\s*\d+\)\s+\(P:\s*([\d.]+)%\)")


@needs_lc0
@needs_maia
def test_uci_go_nodes_1_with_moves_matches_lc0(maia):
    """``position startpos moves ...`` / ``position fen ... moves ...`` and ``go nodes 1`` over UCI: azengine's
    VerboseMoveStats priors are lc0's for the same lines (the W/D/L at one node is checked through the search
    above: at one node azengine's ``info wdl`` describes its unvisited best move, not the root)."""
    games = _games(maia)
    boards = [games[39], games[len(games) - 4], games[-1]]  # Maia from the start, the repetition line, a FEN game
    promoting = chess.Board(PROMOTIONS.format("w"))
    promoting.push_san("Kd1")
    boards.append(promoting)
    theirs = _lc0_one_node(boards)
    engine = RawEngine()
    try:
        engine.send("uci", f"setoption name WeightsFile value {MAIA}", "setoption name Threads value 1",
                    "setoption name VerboseMoveStats value true", "isready")
        engine.wait_for("readyok", 120)
        for board, (their_priors, _, _) in zip(boards, theirs, strict=True):
            moves = " ".join(m.uci() for m in board.move_stack)
            root = "startpos" if board.root() == chess.Board() else f"fen {board.root().fen(en_passant='fen')}"
            engine.send(f"position {root} moves {moves}", "go nodes 1")
            _, _, lines = engine.wait_for("bestmove", 60)
            priors = {board.parse_uci(m.group(1)): float(m.group(2)) / 100
                      for line in lines if (m := _OUR_P_LINE.match(line))}
            assert set(priors) == set(board.legal_moves), (moves, lines[-5:])
            assert max(abs(priors[m] - their_priors[m]) for m in priors) < P_TOLERANCE, moves
    finally:
        engine.send("quit")
        engine.proc.wait(timeout=30)


@needs_maia
def test_evaluator_takes_lc0_planes(maia):
    """The loaded evaluator declares lc0's input, gives the network's 1858 logits and W - L on encode_lc0's
    planes, and refuses azengine's 16 planes in one clear error."""
    from engine.loader import load_model

    evaluator = load_model(MAIA, backend="fp32", threads=1)
    assert evaluator.input_format == LC0_INPUT
    boards = _games(maia)[:40]
    planes = encode_lc0_batch(boards)
    logits, values = evaluator.evaluate(planes)
    with torch.inference_mode():
        policy, wdl = maia(torch.from_numpy(planes))
    wdl = torch.softmax(wdl, 1).numpy()
    np.testing.assert_allclose(logits, policy.numpy(), atol=1e-5)
    np.testing.assert_allclose(values, wdl[:, 0] - wdl[:, 2], atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, 112, 8, 8\)"):
        evaluator.evaluate(encode_batch(boards))
    np.testing.assert_array_equal(encode_for(evaluator, boards), planes)


@needs_maia
def test_onnx_export_matches_torch(maia):
    pytest.importorskip("onnxruntime")
    from engine.loader import load_model

    planes = encode_lc0_batch(_games(maia)[:32] + read_fens(HELDOUT, limit=16))
    torch_logits, torch_values = load_model(MAIA, backend="fp32", threads=1).evaluate(planes)
    onnx_logits, onnx_values = load_model(MAIA, backend="onnx-fp32", threads=1).evaluate(planes)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-3)
    np.testing.assert_allclose(onnx_values, torch_values, atol=1e-4)


@needs_maia
def test_azengine_plays_maia_over_uci():
    engine = chess.engine.SimpleEngine.popen_uci(engine_command(), timeout=60)
    try:
        engine.configure({"WeightsFile": str(MAIA), "Threads": 1})
        board = chess.Board()
        strings = []
        for _ in range(6):
            result = engine.play(board, chess.engine.Limit(nodes=100), info=chess.engine.INFO_ALL)
            strings.append(result.info.get("string", ""))
            assert result.move in board.legal_moves
            board.push(result.move)
        assert any("lc0 network, 6x64 SE" in s for s in strings), strings
    finally:
        engine.quit()
