"""ONNX Runtime backends: export, QDQ int8, loading, the quantize command and a real game over UCI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import chess
import chess.engine
import numpy as np
import pytest

import engine
from engine.encoding import encode_batch
from engine.loader import load_model
from engine.nets.files import sibling_path
from engine.quant import compare, heldout_positions

from networks import TRAINED_ALPHAZERO, save_random_network  # isort: skip

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _quantize(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["azengine", "quantize", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random 2x16 fp32 network and its ONNX fp32 and int8 files, made by the command line tool."""
    folder = tmp_path_factory.mktemp("onnx")
    model = save_random_network(folder / "net.pt", 2, 16, seed=5)
    files = {"fp32": model}
    for qtype, kind in (("fp32", "onnx-fp32"), ("static", "onnx-int8")):
        report = folder / f"{kind}.json"
        out = _quantize("--model", str(model), "--format", "onnx", "--type", qtype, "--calibration-size", "256",
                        "--json", str(report))
        assert out.returncode == 0, out.stderr
        assert sibling_path(model, kind).is_file()
        files[kind] = sibling_path(model, kind)
        files[f"{kind}-report"] = report
    return files


def test_onnx_fp32_matches_torch(onnx_files: dict[str, Path]) -> None:
    planes = encode_batch(heldout_positions(256))
    ref_logits, ref_values = load_model(onnx_files["fp32"], "fp32").evaluate(planes)
    evaluator = load_model(onnx_files["onnx-fp32"])
    assert evaluator.kind == "onnx-fp32"
    logits, values = evaluator.evaluate(planes)
    np.testing.assert_allclose(values, ref_values, atol=1e-4)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-3)


def test_onnx_int8_close_to_fp32(onnx_files: dict[str, Path]) -> None:
    evaluator = load_model(onnx_files["onnx-int8"])
    assert evaluator.kind == "onnx-int8"
    assert evaluator.info.metadata["calibration_positions"] == 256
    accuracy = compare(load_model(onnx_files["fp32"], "fp32"), evaluator, heldout_positions(512))
    # the same bounds as torch's static int8 on a random 2x16 network (tests/test_quantize.py)
    assert accuracy.value_rmse < 0.1
    assert accuracy.top1_agreement > 0.8
    report = json.loads(onnx_files["onnx-int8-report"].read_text())
    assert report["output_bytes"] == onnx_files["onnx-int8"].stat().st_size
    assert report["type"] == "onnx-int8"


def test_any_batch_size(onnx_files: dict[str, Path]) -> None:
    evaluator = load_model(onnx_files["onnx-int8"])
    for size in (1, 7, 64):
        logits, values = evaluator.evaluate(encode_batch(heldout_positions(size)))
        assert logits.shape == (size, 4608) and values.shape == (size,)
        assert np.all(np.abs(values) <= 1.0)


def test_fp32_file_with_onnx_backend_uses_the_sibling(onnx_files: dict[str, Path]) -> None:
    evaluator = load_model(onnx_files["fp32"], "onnx-int8")
    assert evaluator.kind == "onnx-int8"
    assert any(onnx_files["onnx-int8"].name in note for note in evaluator.info.notes)


def test_onnx_file_cannot_run_as_torch(onnx_files: dict[str, Path]) -> None:
    with pytest.raises(engine.ModelFileError, match="onnx-int8 model and cannot run as fp32"):
        load_model(onnx_files["onnx-int8"], "fp32")


def test_bad_onnx_files(onnx_files: dict[str, Path], tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(onnx_files["onnx-int8"].read_bytes()[:5000])
    with pytest.raises(engine.ModelFileError, match="cannot be parsed as ONNX"):
        load_model(truncated)

    import onnx

    plain = onnx.load_model(str(onnx_files["onnx-fp32"]))
    del plain.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save_model(plain, str(foreign))
    with pytest.raises(engine.ModelFileError, match="without azengine metadata"):
        load_model(foreign)


def test_dynamic_onnx_is_refused_and_writes_nothing(onnx_files: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "x.onnx"
    out = _quantize("--model", str(onnx_files["fp32"]), "--format", "onnx", "--type", "dynamic",
                    "--output", str(output))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "--format onnx offers --type fp32 or static" in out.stderr
    assert not output.exists() and not list(tmp_path.iterdir())


def test_missing_onnxruntime_gives_the_install_hint(onnx_files: dict[str, Path]) -> None:
    code = ("import sys; sys.modules['onnxruntime'] = None\n"  # makes 'import onnxruntime' raise ImportError
            "import engine\n"
            "try:\n    engine.load_model(sys.argv[1])\n"
            "except ValueError as exc:\n    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", code, str(onnx_files["onnx-int8"])], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("BackendUnavailableError onnxruntime is not installed")
    assert "pip install 'azengine[onnx]'" in out.stdout


def test_game_with_onnx_int8_backend() -> None:
    """The bundled network with Backend=onnx-int8 (its shipped ONNX int8 sibling) plays a whole game."""
    assert sibling_path(engine.default_model_path(), "onnx-int8").is_file()
    with chess.engine.SimpleEngine.popen_uci(["azengine", "uci"], timeout=120) as player:
        player.configure({"Backend": "onnx-int8"})
        board = chess.Board()
        while not board.is_game_over(claim_draw=True) and board.ply() < 80:
            result = player.play(board, chess.engine.Limit(nodes=30), info=chess.engine.INFO_ALL)
            assert result.move in board.legal_moves
            board.push(result.move)
        assert board.ply() >= 20


def test_bias_correction_of_a_trained_network() -> None:
    from engine.backends import onnx_backend
    from engine.interface import ModelInfo
    from engine.nets.files import read_weights
    from engine.nets.torch_files import build_network
    from engine.quant import onnx_int8
    from engine.quant.calibration import builtin_calibration_planes
    from engine.quant.equalization import equalize_stream
    from engine.torch_conversions import fp32_module

    planes = builtin_calibration_planes()[:1024]
    batches = [planes[i:i + 64] for i in range(0, len(planes), 64)]
    # equalized first, as `azengine quantize --format onnx` does (without it v6's correction was undone:
    # it moved the value on these positions from 0.0209 to 0.0210 from fp32)
    net = equalize_stream(build_network(read_weights(TRAINED_ALPHAZERO)), batches)
    fp32 = onnx_int8.export_fp32(fp32_module(net))
    done: list[tuple[int, int]] = []
    outcome: list[object] = []

    def evaluator(model: object, kind: str) -> onnx_backend.OnnxEvaluator:
        return onnx_backend.OnnxEvaluator(model.SerializeToString(), kind, ModelInfo("default", kind, 6, 64))

    reference = evaluator(fp32, "onnx-fp32")
    boards = heldout_positions(512)
    accuracy = {
        corrected: compare(reference, evaluator(onnx_int8.quantize_int8(
            fp32, batches, bias_correction=corrected, layer_progress=lambda *step: done.append(step),
            on_correction=outcome.append), "onnx-int8"), boards)
        for corrected in (False, True)}
    # every Conv and Gemm with an int8 bias once, in order: 12 trunk and 2 head convolutions, 3 Gemms
    assert done == [(i, 17) for i in range(1, 18)]
    assert len(outcome) == 1 and outcome[0].kept
    # value RMSE and KL without -> with the correction: v3 (not equalized) 0.0343 -> 0.0199, 0.0026 -> 0.0023;
    # v6 0.0262 -> 0.0227, 0.0036 -> 0.0026; v7 0.0259 -> 0.0251, 0.0038 -> 0.0030
    assert accuracy[True].value_rmse < min(0.03, 1.02 * accuracy[False].value_rmse)
    assert accuracy[True].policy_kl < 0.9 * accuracy[False].policy_kl
