"""The PyInstaller builds (``engine.spec``) from a fresh clone after a plain (not editable) install.

The repository at HEAD is cloned into a temporary folder and installed there without ``-e`` (``pip install
--target``, no dependencies: those of this interpreter serve), so the spec must find the compiled search in
the installed package, not in a source folder. The default build is the GUI engine without torch; the full
build (``AZENGINE_FULL=1``) has torch and every subcommand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import chess
import chess.engine
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The GUI engine's size limit on disk (issue #30).
SLIM_LIMIT_BYTES = 150 * 1000 * 1000
#: A generous bound on a start-up under a loaded CI machine; the start-up time itself is measured by
#: benchmarks/bench_startup.py.
START_BOUND_S = 15.0

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to clone the repository")


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (links not followed)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(clone, site): a clone of HEAD and the folder its plain ``pip install`` went to."""
    pytest.importorskip("PyInstaller")
    work = tmp_path_factory.mktemp("fresh")
    clone, site = work / "clone", work / "site"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
         str(site), str(clone)], capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]
    assert list((site / "search").glob("_mcts*")), "pip install built no search/_mcts"
    assert not list((clone / "search").glob("_mcts*.so")), "the clone must not hold a compiled search"
    return clone, site


def build(installed: tuple[Path, Path], full: bool) -> Path:
    """Run ``pyinstaller engine.spec`` in the clone, as a user would; the built executable."""
    clone, site = installed
    env = {**os.environ, "PYTHONPATH": str(site), "AZENGINE_FULL": "1" if full else ""}
    out = clone / ("dist-full" if full else "dist")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "engine.spec", "--noconfirm", "--log-level", "WARN",
         "--distpath", str(out), "--workpath", str(clone / ("build-full" if full else "build"))],
        cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    sys.stderr.write(f"pyinstaller ({'full' if full else 'GUI engine'}): {time.monotonic() - started:.0f} s, "
                     f"{folder_bytes(out / 'azengine') / 1e6:.0f} MB\n")
    exe = out / "azengine" / ("azengine.exe" if os.name == "nt" else "azengine")
    assert exe.is_file()
    return exe


@pytest.fixture(scope="module")
def slim_binary(installed: tuple[Path, Path]) -> Path:
    return build(installed, full=False)


@pytest.fixture(scope="module")
def full_binary(installed: tuple[Path, Path]) -> Path:
    return build(installed, full=True)


def start(exe: Path, options: dict[str, str], caplog: pytest.LogCaptureFixture) -> tuple[chess.engine.SimpleEngine,
                                                                                          float]:
    """The binary under python-chess with ``options`` set and its network loaded; seconds to ``readyok``."""
    started = time.monotonic()
    player = chess.engine.SimpleEngine.popen_uci([str(exe)], cwd=exe.parent.parent, timeout=120, env={
        k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    player.configure(options)
    player.ping()  # isready: the network loads here
    return player, time.monotonic() - started


def test_gui_engine_without_torch(slim_binary: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = slim_binary.parent
    assert folder_bytes(folder) <= SLIM_LIMIT_BYTES
    assert not list(folder.rglob("libtorch*")) and not (folder / "_internal" / "torch").exists()
    assert list(folder.rglob("azengine_default_static_quantized.onnx"))
    assert list(folder.rglob("azengine_default.onnx"))
    board = chess.Board("r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R1BQ1RK1 w - - 0 9")
    with caplog.at_level("WARNING", logger="chess.engine"):
        player, ready_s = start(slim_binary, {}, caplog)
        try:
            assert ready_s < START_BOUND_S
            assert player.id["name"].startswith("azengine")
            assert "loaded " in caplog.text and "onnx-int8" in caplog.text, caplog.text
            assert player.play(board, chess.engine.Limit(nodes=100)).move in board.legal_moves
            player.configure({"Backend": "onnx-fp32"})
            assert player.play(board, chess.engine.Limit(nodes=100)).move in board.legal_moves
            player.configure({"Backend": "static-int8"})  # needs torch: refused, the engine plays on
            player.ping()
            assert "lacks" in caplog.text and "torch" in caplog.text, caplog.text
            assert player.play(board, chess.engine.Limit(nodes=100)).move in board.legal_moves
            player.quit()
        finally:
            player.close()
    for command in ("play", "match"):
        out = subprocess.run([str(slim_binary), command, "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and f"usage: azengine {command}" in out.stdout, out.stderr[-2000:]
    out = subprocess.run([str(slim_binary), "quantize", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "cannot run 'quantize'" in out.stderr, out


@pytest.mark.slow
def test_full_tool_with_torch(full_binary: Path, caplog: pytest.LogCaptureFixture) -> None:
    board = chess.Board()
    with caplog.at_level("WARNING", logger="chess.engine"):
        player, _ = start(full_binary, {"Backend": "static-int8"}, caplog)
        try:
            assert "static-int8" in caplog.text and "error" not in caplog.text, caplog.text
            assert player.play(board, chess.engine.Limit(nodes=100)).move in board.legal_moves
            player.quit()
        finally:
            player.close()
    for command in ("quantize", "bench", "match", "play"):
        out = subprocess.run([str(full_binary), command, "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (command, out.stderr[-2000:])
        assert "usage: azengine " + command in out.stdout
