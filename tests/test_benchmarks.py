"""Every product benchmark in ``benchmarks/`` runs its ``--quick`` mode and prints every row it promises.

The figures themselves are not checked (timings belong to the benchmarks, not to tests); only that each
benchmark still runs against the current package and measures something: each row present, each rate
positive.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.policy_top1 import labels_path, raw_policy_moves, read_labels
from tests.lc0_tools import BUILD_HINT, lc0_binary, maia_path

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"[\d,]+(?:\.\d+)?"


def run_quick(name: str) -> str:
    """``python -m benchmarks.<name> --quick`` from the repository root; its stdout (fails on a non-zero exit)."""
    out = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, f"benchmarks.{name} --quick exited {out.returncode}:\n{out.stderr[-3000:]}"
    return out.stdout


def numbers(line: str) -> list[float]:
    """The numbers of a table row, thousands separators removed."""
    return [float(n.replace(",", "")) for n in re.findall(NUMBER, line)]


def rows(text: str, pattern: str) -> list[str]:
    """The lines of ``text`` that match ``pattern`` at their start (leading spaces ignored)."""
    return [line for line in text.splitlines() if re.match(r"\s*" + pattern, line)]


def test_bench_engine_quick() -> None:
    out = run_quick("bench_engine")
    assert out.startswith("# azengine engine-core benchmark")
    for label in ("encode_batch", "encode_position"):
        (line,) = rows(out, label)
        assert numbers(line.split(":")[1])[0] > 0, line
    table = rows(out, r"2x32\s+1\s+")
    assert [r.split()[2] for r in table] == ["1", "32"]  # net 2x32, 1 thread, batches 1 and 32
    for row in table:
        rates = numbers(row.split(None, 3)[3])  # fp32, dynamic-int8, static-int8 pos/s, then two ratios
        assert len(rates) == 5 and all(r > 0 for r in rates), row


def test_bench_search_quick() -> None:
    out = run_quick("bench_search")
    tree = out.split("(a) tree only")[1].split("(b)")[0]
    assert [int(numbers(r)[0]) for r in rows(tree, r"\d+\s+" + NUMBER)] == [1, 32, 64]
    assert all(numbers(r)[1] > 0 for r in rows(tree, r"\d+\s+" + NUMBER))
    engine_rows = rows(out.split("(b)")[1], r"(fp32|static-int8)\s+\d+")
    assert [(r.split()[0], r.split()[1]) for r in engine_rows] == [
        ("fp32", "32"), ("fp32", "64"), ("static-int8", "32"), ("static-int8", "64")]
    for row in engine_rows:
        nps, raw = (float(x.replace(",", "")) for x in row.split()[2:4])
        assert nps > 0 and raw > 0, row


def test_bench_threads_quick() -> None:
    out = run_quick("bench_threads")
    table = rows(out, r"2x32 ")
    assert [r.split()[1] for r in table] == ["fp32", "static-int8"]
    for row in table:
        raw, nps = (float(m) for m in re.findall(r"raw\s+(\d+) pos/s\s+search\s+(\d+) nodes/s", row)[0])
        assert raw > 0 and nps > 0, row


def test_bench_qengines_quick() -> None:
    out = run_quick("bench_qengines")
    engines = [q for q in ("onednn", "x86", "fbgemm") if q in torch.backends.quantized.supported_engines]
    (header,) = rows(out, "batch ")
    assert header.split() == ["batch", "fp32", *engines]
    (row,) = rows(out, r"32\s")
    rates = re.findall(r"(\d+) \((\d+\.\d+)x\)", row)
    assert len(rates) == len(engines) and all(float(rate) > 0 and float(ratio) > 0 for rate, ratio in rates), row


def test_bench_families_quick() -> None:
    out = run_quick("bench_families")
    assert out.startswith("# azengine network families benchmark")
    (head,) = rows(out, "network ")
    assert head.split()[3:5] == ["fp32", "pos/s"] and "static-int8" in head
    table = rows(out, r"(alphazero|seresnet|seresnet\+SE)\s+2x32")
    assert [r.split()[0] for r in table] == ["alphazero", "seresnet", "seresnet+SE"]
    for row in table:
        rates = numbers(row.split(None, 2)[2])  # params, then one rate per kind
        assert len(rates) == head.count("pos/s") + 1 and all(r > 0 for r in rates), row
    assert len(rows(out, r"# seresnet(\+SE)? vs alphazero: fp32 ")) == 2


def test_bench_startup_quick() -> None:
    out = run_quick("bench_startup")
    assert out.startswith("# azengine start-up benchmark")
    (row,) = rows(out, r"auto\s")
    uciok, _, _, readyok, _, _ = numbers(row)
    assert 0 < uciok <= readyok, row


def test_bench_defaults_quick() -> None:
    out = run_quick("bench_defaults")
    assert out.startswith("# azengine defaults benchmark")
    table = rows(out, r"(default|old)\s+\d")
    assert [r.split()[0] for r in table] == ["default", "old"]
    for row in table:
        alone, _, _, pair, _, _ = numbers(row)
        assert alone > 0 and pair > 0, row
    assert [r.split()[3] for r in rows(out, r"default / old")] == ["alone:", "pair:"]


def test_bench_lc0_quick() -> None:
    if lc0_binary() is None:
        pytest.skip(f"lc0 is not built; {BUILD_HINT}")
    if maia_path("maia-1100") is None:
        pytest.skip("shared/nets/maia-1100.pb.gz is not here")
    out = run_quick("bench_lc0")
    assert out.startswith("# azengine vs lc0 benchmark")
    table = rows(out, r"maia-1100\s+")
    kinds = ["fp32", "static-int8"] + (["onnx-int8"] if "onnx-int8" in out else [])
    assert [(r.split()[1], r.split()[2], r.split()[3]) for r in table] == [
        ("lc0", "blas", "1"), *(("azengine", kind, "1") for kind in kinds)]
    for row in table:
        nps, ratio = numbers(row.split(None, 4)[4])
        assert nps > 0 and ratio > 0, row


def test_move_latency_quick() -> None:
    out = run_quick("move_latency")
    median = re.fullmatch(r"engine 1: 30 moves, go -> bestmove median ([\d.]+) ms; slowest:", out.splitlines()[0])
    assert median and float(median[1]) > 0, out
    slowest = rows(out, r"[\d.]+ ms at")
    assert len(slowest) == 5 and all(numbers(r)[0] > 0 for r in slowest), out


def test_search_agreement_quick() -> None:
    """Both shipped int8 files are compared with fp32 after a search, and fp32 repeats its own moves exactly."""
    out = run_quick("search_agreement")
    assert "20 held-out positions" in out and "100 nodes per search" in out
    agreement = {line.split(": ")[0].strip(): line.split(": ")[1] for line in rows(out, r"\S.*: \d+/20 = ")}
    assert sorted(name.rsplit("/", 1)[-1] for name in agreement) == [
        "azengine_default_static_quantized.onnx", "azengine_default_static_quantized.pt", "fp32 again"]
    assert agreement["fp32 again"] == "20/20 = 100.0%"  # one thread, fixed nodes: the search is repeatable
    assert all(10 <= numbers(value)[0] <= 20 for value in agreement.values()), agreement


def test_policy_top1_reads_each_networks_own_policy() -> None:
    """The depth-16 benchmark scores an lc0 network in lc0's planes and move index, and ours in ours: both find
    Stockfish's move far more often than a wrong index would (about one legal move in 30)."""
    maia = maia_path("maia-1900")
    if maia is None:
        pytest.skip("shared/nets/maia-1900.pb.gz is not here")
    labelled = read_labels(labels_path(16))[:100]
    boards = [board for board, _, _ in labelled]
    for model in (maia, ROOT / "engine" / "models" / "azengine_default.pt"):
        moves = raw_policy_moves(str(model), boards)
        assert all(move in board.legal_moves for move, board in zip(moves, boards, strict=True))
        same = sum(move == best for move, (_, best, _) in zip(moves, labelled, strict=True))
        assert same >= 25, f"{model.name}: Stockfish's depth-16 move in only {same} of 100 positions"
