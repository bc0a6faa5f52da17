"""Fast start with ``Backend=auto`` where the bundled network's best form needs torch (static-int8 on AMX CPUs).

The engine answers ``readyok`` with the ONNX int8 network, before torch is imported, loads the torch form
in the background and switches to it between two searches, saying so once. The engine runs in a child
process (the UCI loop of ``azengine``, ``uci.cli.run``) driven by python-chess; the child notes at every
``readyok`` whether torch was imported by then. On a CPU whose best form is an ONNX one there is nothing
to load in the background and these tests are skipped.
"""

from __future__ import annotations

import ast
import io
import logging
import os
import re
import sys
import time
from pathlib import Path

import chess
import chess.engine
import pytest

import engine
from engine.loader import fast_start_backends

from networks import BUNDLED_NETWORK  # isort: skip

ROOT = Path(__file__).resolve().parents[1]
FORMS = fast_start_backends(engine.default_model_path())
pytestmark = pytest.mark.skipif(FORMS is None, reason="Backend=auto needs no torch on this CPU or installation")
START, FINAL = FORMS or ("", "")
MIDDLEGAME = chess.Board("r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R1BQ1RK1 w - - 0 9")
#: Safety bound for the background load on a busy 2-core machine (it takes seconds).
LOAD_S = 120.0

# The UCI loop as ``azengine`` runs it, its stdout watched: at each ``readyok`` whether torch is imported.
CHILD = """
import argparse, io, sys
from uci import cli

class Watched(io.TextIOBase):
    def __init__(self, out):
        self.out, self.marks = out, []
    def write(self, text):
        if text.startswith("readyok"):
            self.marks.append("torch" in sys.modules)
        return self.out.write(text)
    def flush(self):
        self.out.flush()

watched = sys.stdout = Watched(sys.stdout)
cli.run(argparse.Namespace(log_level="WARNING"))
with open(sys.argv[1], "w") as report:
    report.write(" ".join("torch" if mark else "no-torch" for mark in watched.marks) + "\\n")
sys.__stdout__.flush()
import os
os._exit(0)
"""


def start_child(report: Path, env: dict[str, str] | None = None) -> chess.engine.SimpleEngine:
    """``azengine``'s UCI loop in a child process, under python-chess."""
    return chess.engine.SimpleEngine.popen_uci([sys.executable, "-c", CHILD, str(report)], cwd=ROOT,
                                               timeout=LOAD_S, env=env)


def debug_on(player: chess.engine.SimpleEngine) -> None:
    """Send ``debug on`` (each search then names its network in an info string)."""
    player.protocol.loop.call_soon_threadsafe(player.protocol.debug, True)
    player.ping()


def search_strings(player: chess.engine.SimpleEngine, nodes: int = 200) -> tuple[list[str], chess.Move | None]:
    """``go nodes`` from a middlegame: the info strings of the search and its best move."""
    strings = []
    with player.analysis(MIDDLEGAME, chess.engine.Limit(nodes=nodes)) as analysis:
        for info in analysis:
            if "string" in info:
                strings.append(info["string"])
        best = analysis.wait()
    return strings, best.move


def ping_until(player: chess.engine.SimpleEngine, caplog: pytest.LogCaptureFixture, pattern: str,
               seconds: float) -> bool:
    """``isready`` every 0.2 s until ``pattern`` is in the engine output logged so far, at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        player.ping()
        if re.search(pattern, caplog.text):
            return True
        time.sleep(0.2)
    return False


def test_readyok_before_torch_then_switch_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    report = tmp_path / "readyok.txt"
    with caplog.at_level(logging.WARNING, logger="chess.engine"):
        player = start_child(report)
        try:
            player.ping()  # the first readyok: the ONNX network is loaded, torch is not imported
            assert re.search(rf"info string loaded \S+\.onnx: {BUNDLED_NETWORK} {START}\b", caplog.text), caplog.text
            assert f"{FINAL}, this CPU's faster form, is loading in the background" in caplog.text
            debug_on(player)
            during, move = search_strings(player)  # early: torch is still being imported
            assert move in MIDDLEGAME.legal_moves
            assert any(re.search(rf"this search runs \S+: {BUNDLED_NETWORK} {START}\b", s) for s in during), during
            assert ping_until(player, caplog, rf"switched to \S+: {BUNDLED_NETWORK} {FINAL}\b", LOAD_S), caplog.text
            after, move = search_strings(player)
            assert move in MIDDLEGAME.legal_moves
            assert any(re.search(rf"this search runs \S+: {BUNDLED_NETWORK} {FINAL}\b", s) for s in after), after
            again, _ = search_strings(player, nodes=50)
            player.ping()
            player.quit()
        finally:
            player.close()
    marks = report.read_text().split()
    assert marks[0] == "no-torch", marks
    assert marks[-1] == "torch", marks
    everything = caplog.text + "\n".join(during + after + again)
    assert everything.count("switched to") == 1, everything
    assert "could not be loaded" not in everything and "error" not in everything, everything
    assert "bestmove" not in caplog.text  # no bestmove outside the searches' own: exactly one each


def test_explicit_backend_during_the_load_cancels_the_switch(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chess.engine"):
        player = start_child(tmp_path / "readyok.txt")
        try:
            player.ping()  # the background load starts
            player.configure({"Backend": "onnx-int8"})
            player.ping()
            assert len(re.findall(rf"info string loaded \S+\.onnx: {BUNDLED_NETWORK} {START}\b", caplog.text)) == 2
            # longer than the load takes (the other test's switch comes within seconds): no switch comes
            assert not ping_until(player, caplog, "switched to|could not be loaded", 12.0), caplog.text
            debug_on(player)
            strings, move = search_strings(player)
            assert move in MIDDLEGAME.legal_moves
            assert any(re.search(rf"this search runs \S+: {BUNDLED_NETWORK} {START}\b", s) for s in strings), strings
            player.quit()
        finally:
            player.close()
    assert "switched to" not in caplog.text and "error" not in caplog.text, caplog.text


def test_torch_that_fails_to_import_keeps_onnx_and_says_so_once(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A torch installation that is there but cannot be imported: the engine plays on with ONNX."""
    broken = tmp_path / "site" / "torch"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('this torch is broken on purpose')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken.parent), str(ROOT)])}
    with caplog.at_level(logging.WARNING, logger="chess.engine"):
        player = start_child(tmp_path / "readyok.txt", env)
        try:
            player.ping()
            assert ping_until(player, caplog, "could not be loaded", LOAD_S), caplog.text
            debug_on(player)
            strings, move = search_strings(player)
            assert move in MIDDLEGAME.legal_moves
            assert any(re.search(rf"this search runs \S+: {BUNDLED_NETWORK} {START}\b", s) for s in strings), strings
            player.ping()
            player.quit()
        finally:
            player.close()
    assert caplog.text.count("could not be loaded") == 1, caplog.text
    assert f"{FINAL} could not be loaded (this torch is broken on purpose)" in caplog.text, caplog.text
    assert "switched to" not in caplog.text


def test_explicit_same_form_during_the_load_is_not_loaded_twice() -> None:
    """``setoption Backend <the form loading>`` waits for the background load and plays its network."""
    from uci.loop import UciEngine
    from uci.writer import UciWriter

    out = io.StringIO()
    uci = UciEngine(UciWriter(out))
    try:
        uci.handle("isready")
        upgrade = uci._upgrade
        assert upgrade is not None and uci.evaluator is not None and uci.evaluator.kind == START
        uci.handle("setoption name Threads value 2")  # during the load: applied when its network plays
        uci.handle(f"setoption name Backend value {FINAL}")
        uci.handle("isready")
        assert upgrade.done() and uci.evaluator is upgrade.result(), out.getvalue()
        assert uci.evaluator.kind == FINAL and uci._upgrade is None
        assert uci.evaluator.threads == 2, out.getvalue()
        uci.handle("position startpos")
        uci.handle("go nodes 30")
        uci.handle("isready")
        uci._wait_search()
        assert out.getvalue().count("bestmove ") == 1, out.getvalue()
    finally:
        if uci.searcher is not None:
            uci.searcher.close()


def test_threads_set_during_the_load_reach_the_network_it_brings() -> None:
    """``setoption Threads`` while the torch form loads: the ONNX session gets it now, the torch form at the switch."""
    from uci.loop import UciEngine
    from uci.writer import UciWriter

    out = io.StringIO()
    uci = UciEngine(UciWriter(out))
    try:
        uci.handle("setoption name Threads value 1")
        uci.handle("isready")
        upgrade = uci._upgrade
        assert upgrade is not None and upgrade.threads == 1
        uci.handle("setoption name Threads value 2")
        assert uci.evaluator is not None and uci.evaluator.kind == START
        assert uci.evaluator.session.get_session_options().intra_op_num_threads == 2
        upgrade.wait()
        uci.handle("isready")  # between searches: the switch
        assert uci.evaluator is upgrade.result() and uci.evaluator.kind == FINAL, out.getvalue()
        assert uci.evaluator.threads == 2
        import torch

        assert torch.get_num_threads() == 2
        lines = out.getvalue().splitlines()
        assert sum(line.startswith("info string switched to ") for line in lines) == 1, lines
        assert lines[-1] == "readyok"
    finally:
        if uci.searcher is not None:
            uci.searcher.close()


PRELOAD_CHILD = """
import sys
from engine.torch_import import preload_torch_libraries
assert "torch" not in sys.modules
print(preload_torch_libraries())
def loaded():
    with open("/proc/self/maps") as maps:
        return sorted({line.split()[-1] for line in maps if line.rstrip().endswith("/libtorch_cpu.so")})
print(loaded())
import torch
print(float(torch.ones(3).sum()), torch.jit.load is not None)
print(loaded())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is for Linux")
def test_torch_library_preloaded_outside_the_gil_is_the_one_torch_uses() -> None:
    """The library loaded ahead of ``import torch`` is the very one torch then uses: loaded once, torch works."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", PRELOAD_CHILD], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "TORCH_CPP_LOG_LEVEL": "ERROR"})
    assert out.returncode == 0, out.stderr
    preloaded, before, result, after = out.stdout.splitlines()
    assert preloaded == "True"
    assert before == after and len(ast.literal_eval(before)) == 1, out.stdout
    assert result == "3.0 True"
