"""The PyInstaller build (``engine.spec``): the one-folder binary speaks UCI and runs the subcommands."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import chess
import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("pyinstaller") is None:
        pytest.skip("pyinstaller is not installed (pip install pyinstaller)")
    work = tmp_path_factory.mktemp("pyinstaller")
    build = subprocess.run(
        [sys.executable, "-m", "PyInstaller", str(ROOT / "engine.spec"), "--noconfirm", "--log-level", "WARN",
         "--distpath", str(work / "dist"), "--workpath", str(work / "build")],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    exe = work / "dist" / "azengine" / "azengine"
    assert exe.is_file()
    return exe


class _Uci:
    def __init__(self, exe: Path) -> None:
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, prefix: str) -> list[str]:
        assert self.proc.stdout is not None
        lines = []
        while True:
            line = self.proc.stdout.readline()
            assert line, f"binary exited before {prefix!r}: {lines[-5:]}"
            lines.append(line.strip())
            if line.startswith(prefix):
                return lines


def test_binary_plays_uci(binary: Path) -> None:
    uci = _Uci(binary)
    started = time.monotonic()
    uci.send("uci")
    options = uci.wait_for("uciok")
    assert any(line.startswith("id name azengine") for line in options)
    assert any("option name Backend" in line for line in options)
    uci.send("isready")
    loaded = uci.wait_for("readyok")
    assert any(line.startswith("info string loaded") for line in loaded), loaded
    assert time.monotonic() - started < 120
    board = chess.Board()
    uci.send("position startpos")
    uci.send("go nodes 100")
    move = chess.Move.from_uci(uci.wait_for("bestmove")[-1].split()[1])
    assert move in board.legal_moves
    uci.send("setoption name Backend value static-int8")
    uci.send("isready")
    assert not any("error" in line for line in uci.wait_for("readyok"))
    uci.send("go nodes 100")
    assert chess.Move.from_uci(uci.wait_for("bestmove")[-1].split()[1]) in board.legal_moves
    uci.send("quit")
    assert uci.proc.wait(timeout=10) == 0


def test_binary_subcommands(binary: Path) -> None:
    for command in ("quantize", "bench", "match", "play"):
        out = subprocess.run([str(binary), command, "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (command, out.stderr[-2000:])
        assert "usage: azengine " + command in out.stdout
