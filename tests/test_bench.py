"""``azengine bench``: every section measured and written, sizes from disk, plot, bad arguments."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.backends import onnx_backend
from engine.nets.alphazero import AlphaZeroNet


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["azengine", "bench", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("bench") / "net.pt"
    torch.save(AlphaZeroNet(1, 16).state_dict(), path)
    return path


def test_bench_writes_every_section(model: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    out = _bench("--model", str(model), "--batch-sizes", "1,4", "--repeats", "2", "--seconds", "0.05",
                 "--nodes", "40", "--json", str(out_json), "--plot", str(out_png))
    assert out.returncode == 0, out.stderr
    r = json.loads(out_json.read_text())
    onnx = {"onnx-fp32", "onnx-int8"} if onnx_backend.available() else set()
    assert set(r["throughput"]) == {"fp32", "dynamic-int8", "static-int8"} | onnx
    for per_batch in r["throughput"].values():
        assert set(per_batch) == {"1", "4"}
        assert all(v["positions_per_s"] > 0 and v["ms_per_batch"] > 0 for v in per_batch.values())
    for kind, m in r["mcts"].items():
        assert m["nodes_per_s"] > 0 and m["raw_positions_per_s_at_minibatch"] > 0, kind
        assert m["nodes"] == 4 * 40
    for kind, size in r["sizes"].items():
        if size["source"] != "made now":  # files made in a temporary folder are gone after the run
            assert size["bytes"] == Path(size["file"]).stat().st_size, kind
        assert size["bytes"] > 0
    assert r["sizes"]["fp32"]["bytes"] == model.stat().st_size
    for acc in r["accuracy"].values():
        assert 0 <= acc["top1_agreement"] <= 1 and acc["value_rmse"] >= 0
    assert r["machine"]["torch_threads"] == 1 and r["machine"]["torch"] == torch.__version__
    assert len(r["summary"]) == 2 + len(onnx)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Evaluator throughput" in out.stdout and "Summary" in out.stdout


def test_bench_skip_mcts_and_only_fp32(model: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "b.json"
    out = _bench("--model", str(model), "--quantization", "none", "--onnx", "no", "--skip-mcts", "--batch-sizes", "2",
                 "--repeats", "1", "--seconds", "0.02", "--json", str(out_json))
    assert out.returncode == 0, out.stderr
    r = json.loads(out_json.read_text())
    assert "mcts" not in r and list(r["throughput"]) == ["fp32"]


@pytest.mark.parametrize("args,needle", [
    (["--batch-sizes", "1,x"], "--batch-sizes"),
    (["--batch-sizes", "0"], "positive"),
    (["--model", "/nonexistent/model.pt"], "no such file"),
    (["--positions", "/nonexistent/positions.epd"], "no such file"),
])
def test_bench_bad_arguments(args: list[str], needle: str) -> None:
    out = _bench(*args, "--skip-mcts", "--repeats", "1", "--seconds", "0.01")
    assert out.returncode == 2
    assert needle in out.stderr


class _CallOrder:
    """A real fp32 evaluator that records, in a shared list, when it was called."""

    def __init__(self, name: str, log: list[str], model: Path) -> None:
        from engine import load_model

        self.name, self.log, self.inner = name, log, load_model(str(model), backend="fp32", threads=1)

    def evaluate(self, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.log.append(self.name)
        return self.inner.evaluate(planes)


def test_bench_repetitions_take_turns(model: Path) -> None:
    import chess

    from engine import encode_batch
    from quantize.bench import _time_interleaved

    log: list[str] = []
    evaluators = {name: _CallOrder(name, log, model) for name in ("a", "b")}
    timings = _time_interleaved(evaluators, encode_batch([chess.Board()] * 2), repeats=3, min_seconds=0.0)
    assert set(timings) == {"a", "b"} and all(t["positions_per_s"] > 0 for t in timings.values())
    # two warm-up calls each, then one call per evaluator per round (min_seconds=0 means one call per block)
    assert log == ["a", "a", "b", "b"] + ["a", "b"] * 3
