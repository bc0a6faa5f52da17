"""Maia-1900 under azengine against lc0 itself: move probabilities and W/D/L at one node, the 16-plane
adapter, and azengine playing the network over UCI."""

from __future__ import annotations

import re
import subprocess

import chess
import chess.engine
import numpy as np
import pytest
import torch

from engine import encode_batch, move_to_index
from engine.nets.lc0 import encode_lc0_batch, move_to_lc0_index, read_lc0
from engine.nets.lc0.adapter import Lc0As16Plane
from engine.nets.lc0.network import build_lc0_net
from engine.positions import read_fens
from tests.lc0_tools import BUILD_HINT, REPO, lc0_binary, maia_path
from tests.uci_client import engine_command

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
    lc0 = Lc0Process()
    try:
        theirs = [lc0.one_node(b) for b in boards]
    finally:
        lc0.close()
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


@needs_lc0
@needs_maia
def test_history_matches_lc0(maia):
    """Positions given as moves from their game's start: history slots, flipping, repetitions, rule 50."""
    boards = _games(maia)
    ours, our_wdl = _our_priors(maia, boards)
    lc0 = Lc0Process()
    try:
        theirs = [lc0.one_node(b) for b in boards]
    finally:
        lc0.close()
    p_errors = []
    for board, mine, wdl, (their_priors, their_wdl, their_q) in zip(boards, ours, our_wdl, theirs, strict=True):
        where = f"{board.root().fen()} moves {' '.join(m.uci() for m in board.move_stack)}"
        assert set(their_priors) == set(board.legal_moves), where
        p_errors.append(max(abs(mine[m] - their_priors[m]) for m in mine))
        assert p_errors[-1] < P_TOLERANCE, where
        assert (np.abs(wdl - their_wdl) < WDL_TOLERANCE).all(), where
        assert abs(wdl[0] - wdl[2] - their_q) < Q_TOLERANCE, where
    print(f"\n{len(boards)} positions with history: max |P - lc0 P| = {max(p_errors):.2e}")


@needs_maia
def test_adapter_is_the_network_on_16_planes(maia):
    """On positions the 16 planes describe fully (FEN only, white to move, no rule-50 count, no en passant),
    the adapter's priors over legal moves are the network's, and its W/D/L is the network's (value W - L)."""
    boards = [b for b in read_fens(HELDOUT, limit=400)
              if b.turn == chess.WHITE and b.halfmove_clock == 0 and b.ep_square is None][:60]
    boards.append(chess.Board("r3k2r/pPpp1ppp/8/8/8/8/PPPP1PpP/R3K2R w KQkq - 0 1"))  # castling, promotions
    boards.append(chess.Board())
    assert len(boards) > 20
    adapter = Lc0As16Plane(maia).eval()
    with torch.inference_mode():
        logits, adapter_wdl = adapter(torch.from_numpy(encode_batch(boards)))
        values = adapter_wdl[:, 0] - adapter_wdl[:, 2]
    ours, wdl = _our_priors(maia, boards)
    for i, board in enumerate(boards):
        moves = [m for m in board.legal_moves if m.promotion in (None, chess.QUEEN)]  # underpromotions share
        p = torch.softmax(logits[i, [move_to_index(board, m) for m in moves]].double(), 0).numpy()
        q = np.array([ours[i][m] for m in moves])
        np.testing.assert_allclose(p, q / q.sum(), atol=1e-5)
        assert abs(values[i].item() - (wdl[i, 0] - wdl[i, 2])) < 1e-5


@needs_maia
def test_onnx_export_matches_torch():
    pytest.importorskip("onnxruntime")
    from engine.loader import load_model

    boards = read_fens(HELDOUT, limit=32)
    planes = encode_batch(boards)
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
