"""The UCI play path imports no torch when the network it runs is an ONNX file; the CPU kind and Threads default.

The engine runs in a child process: the UCI loop of ``azengine`` (``uci.cli.run``, the command's own code)
on a pipe, driven by python-chess; when the loop ends the child writes whether ``torch`` was ever imported.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import chess
import chess.engine
import pytest

import engine
from engine.backends.onnx_backend import ONNX_KINDS
from engine.cpu import cpu_flags, cpu_kind, default_threads
from engine.loader import bundled_backend, fast_start_backends, load_for_play
from engine.nets.files import sibling_path

from networks import BUNDLED_NETWORK  # isort: skip

ROOT = Path(__file__).resolve().parents[1]

# The UCI loop as ``azengine`` runs it, then a report of the imported modules (``azengine`` itself ends with
# os._exit, so the report cannot be made after its main()).
CHILD = """
import argparse, sys
from uci import cli
cli.run(argparse.Namespace(log_level="WARNING"))
names = list(sys.modules)  # one step: a background load may still be importing
with open(sys.argv[1], "w") as report:
    report.write("\\n".join(sorted(name for name in names if name == "torch" or name.startswith("torch."))))
    report.write("\\nEND\\n")
sys.stdout.flush()
import os
os._exit(0)
"""


def play_and_report(tmp_path: Path, options: dict[str, str],
                    caplog: pytest.LogCaptureFixture) -> tuple[str, list[str], chess.Move | None]:
    """Play ``go nodes 100`` from a middlegame with ``options``; the loading info strings, torch modules, move.

    The network loads on ``isready``; python-chess logs the ``info string`` lines that come before
    ``readyok`` (outside a search) as unexpected output, which is where the test reads them.
    """
    report = tmp_path / "modules.txt"
    board = chess.Board("r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R1BQ1RK1 w - - 0 9")
    with caplog.at_level(logging.WARNING, logger="chess.engine"):
        player = chess.engine.SimpleEngine.popen_uci([sys.executable, "-c", CHILD, str(report)], cwd=ROOT,
                                                     timeout=120)
        try:
            player.configure(options)
            player.ping()
            best = player.play(board, chess.engine.Limit(nodes=100)).move
            player.configure({"Threads": "1"})  # a changed thread count reloads the network
            player.ping()
            player.quit()
        finally:
            player.close()
    lines = report.read_text().splitlines()
    assert lines[-1] == "END"
    return caplog.text, [line for line in lines[:-1] if line], best


@pytest.mark.parametrize("options", [{"Backend": "onnx-int8"}, {"Backend": "onnx-fp32", "Threads": "2"}],
                         ids=["onnx-int8", "onnx-fp32-threads2"])
def test_onnx_network_plays_without_torch(tmp_path: Path, options: dict[str, str],
                                         caplog: pytest.LogCaptureFixture) -> None:
    log, torch_modules, best = play_and_report(tmp_path, options, caplog)
    assert re.search(rf"info string loaded \S+\.onnx: {BUNDLED_NETWORK} {options['Backend']}\b", log), log
    assert "error" not in log
    assert torch_modules == []
    assert best is not None


def test_default_imports_torch_only_for_a_torch_form(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No options: the bundled network in this CPU's form; torch is imported exactly when that form needs it.

    Where that form needs torch, the engine starts with the torch-free one and loads the other in the
    background (tests/test_fast_start.py follows the switch).
    """
    log, torch_modules, best = play_and_report(tmp_path, {}, caplog)
    backend = bundled_backend()
    first = (fast_start_backends(engine.default_model_path()) or (backend,))[0]
    assert re.search(rf"info string loaded \S+: {BUNDLED_NETWORK} {first}\b", log), log
    if first == backend:  # else torch is being imported in the background when the loop ends, or not yet
        assert (torch_modules == []) == (backend in ONNX_KINDS)
    assert best is not None


def test_torchscript_network_imports_torch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The check can fail: a TorchScript backend on the same path does import torch."""
    log, torch_modules, _ = play_and_report(tmp_path, {"Backend": "static-int8"}, caplog)
    assert re.search(rf"info string loaded \S+\.pt: {BUNDLED_NETWORK} static-int8\b", log), log
    assert "torch" in torch_modules


def test_play_path_modules_import_no_torch() -> None:
    code = ("import sys\nimport uci.cli, uci.loop, uci.options, uci.play, search, engine, engine.loader\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_cpu_kind_from_flags() -> None:
    assert cpu_kind(frozenset({"sse2", "avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"})) == "amx"
    assert cpu_kind(frozenset({"sse2", "avx2", "avx512f", "avx512_vnni"})) == "avx512-vnni"
    assert cpu_kind(frozenset({"sse2", "fma", "avx2"})) == "avx2"
    assert cpu_kind(frozenset({"sse2"})) == "baseline"
    assert cpu_kind(frozenset()) == "unknown"
    assert default_threads(frozenset({"avx2"}), cores=1) == 1  # never more network threads than cores
    assert 1 <= default_threads() <= (os.cpu_count() or 1)


def test_cpu_kind_of_this_machine() -> None:
    """/proc/cpuinfo's flags agree with lscpu's (util-linux reads the same file on Linux)."""
    flags = cpu_flags()
    if not flags:
        pytest.skip("no CPU flags readable here")
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30)
    if lscpu.returncode != 0:
        pytest.skip("lscpu is not available")
    listed = next(line.split(":", 1)[1].split() for line in lscpu.stdout.splitlines() if line.startswith("Flags"))
    assert ("amx_int8" in listed) == (cpu_kind() == "amx")
    assert ("avx512_vnni" in listed and "amx_int8" not in listed) == (cpu_kind() == "avx512-vnni")
    assert ("avx2" in listed) == (cpu_kind() in ("amx", "avx512-vnni", "avx2"))


def test_onnx_siblings_load_without_their_torch_file(tmp_path: Path) -> None:
    """The GUI build ships only the ONNX files: the bundled network's name still finds them."""
    for kind in ("onnx-int8", "onnx-fp32"):
        shutil.copy(sibling_path(engine.default_model_path(), kind), sibling_path(tmp_path / "net.pt", kind))
        evaluator = load_for_play(tmp_path / "net.pt", kind, threads=1)
        assert evaluator.kind == kind
    with pytest.raises(engine.ModelFileError, match="no such file"):
        load_for_play(tmp_path / "net.pt", "static-int8", threads=1)
