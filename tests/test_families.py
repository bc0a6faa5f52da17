"""Network families: azengine's ``seresnet`` beside pytorch-alpha-zero's ``alphazero``.

Family detection from the file, the convolutional policy head's index, WDL outputs, every evaluator kind
made by ``azengine quantize`` and loaded back, equalization, and bad files.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import chess
import numpy as np
import pytest
import torch

import engine
from engine.backends import onnx_backend
from engine.encoding import encode_batch, move_to_index
from engine.interface import wdl_per_mille
from engine.nets.files import read_weights
from engine.nets.seresnet import SEResNet, architecture_of
from engine.nets.torch_files import build_network
from engine.quant import Recipe, compare, heldout_positions
from engine.quant.equalization import equalize_stream
from engine.quant.recipe import SERESNET_LAYERS
from engine.quant.torch_int8 import archive_bytes
from quantize.command import QuantizeRequest, quantize_file

from networks import save_random_network, save_random_seresnet  # isort: skip

KINDS = ["dynamic-int8", "static-int8", "onnx-fp32", "onnx-int8"]
#: Bounds against fp32 on the 1,200 held-out positions, for the random 2x16 SE network below: measured
#: value RMSE <= 0.0002 and top-1 agreement >= 96% for every int8 kind; set with a wide margin.
VALUE_RMSE_BOUND = {"dynamic-int8": 0.005, "static-int8": 0.01, "onnx-fp32": 1e-5, "onnx-int8": 0.01}
TOP1_BOUND = {"dynamic-int8": 0.95, "static-int8": 0.85, "onnx-fp32": 0.999, "onnx-int8": 0.85}


@pytest.fixture(scope="module")
def se_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_seresnet(tmp_path_factory.mktemp("se") / "seresnet_2x16.pt", 2, 16, seed=7)


@pytest.fixture(scope="module")
def boards() -> list[chess.Board]:
    return heldout_positions(64)


def test_family_is_read_from_the_keys(se_model: Path, tmp_path: Path) -> None:
    weights = read_weights(se_model)
    assert (weights.family, weights.kind, weights.blocks, weights.filters) == ("seresnet", "fp32", 2, 16)
    assert weights.metadata["se_channels"] == 4
    az = read_weights(save_random_network(tmp_path / "az.pt", 1, 8, seed=0))
    assert (az.family, az.blocks, az.filters) == ("alphazero", 1, 8)
    plain = read_weights(save_random_seresnet(tmp_path / "plain.pt", 3, 8, seed=0, se=False))
    assert (plain.family, plain.blocks, plain.metadata["se_channels"]) == ("seresnet", 3, 0)
    assert isinstance(build_network(plain), SEResNet) and build_network(plain).blocks[0].se is None
    ev = engine.load_model(se_model)
    assert ev.has_wdl and ev.info.family == "seresnet"
    assert "seresnet 2x16 SE fp32" in ev.info.describe()
    az_ev = engine.load_model(tmp_path / "az.pt")
    assert not az_ev.has_wdl and "alphazero 1x8 fp32" in az_ev.info.describe()
    with pytest.raises(TypeError, match="no WDL head"):
        az_ev.evaluate_wdl(encode_batch([chess.Board()]))


def test_policy_planes_are_the_move_index() -> None:
    torch.manual_seed(1)
    net = SEResNet(1, 8).eval()
    planes = {}
    net.policy.conv2.register_forward_hook(lambda _m, _i, out: planes.setdefault("out", out))
    board = chess.Board("r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R b KQkq - 3 3")  # black: mirrored
    with torch.no_grad():
        logits, wdl = net(torch.from_numpy(encode_batch([board])))
    out = planes["out"][0]
    assert logits.shape == (1, 4608) and wdl.shape == (1, 3) and out.shape == (72, 8, 8)
    for move in board.legal_moves:
        index = move_to_index(board, move)
        plane, rank, file = index // 64, (index % 64) // 8, index % 8
        assert logits[0, index] == out[plane, rank, file]


def test_wdl_sums_to_one_and_per_mille_to_1000(se_model: Path, boards: list[chess.Board]) -> None:
    ev = engine.load_model(se_model)
    planes = encode_batch(boards)
    logits, values = ev.evaluate(planes)
    logits_wdl, wdl = ev.evaluate_wdl(planes)
    assert wdl.shape == (len(boards), 3) and np.all(wdl >= 0)
    np.testing.assert_allclose(wdl.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(logits, logits_wdl)
    np.testing.assert_allclose(values, wdl[:, 0] - wdl[:, 2], atol=1e-6)
    for row in wdl:
        assert sum(wdl_per_mille(row)) == 1000
    # rounding each to nearest would give 1001 or 999 here; largest remainders keep 1000
    assert wdl_per_mille(np.array([0.3335, 0.3335, 0.333])) == (334, 333, 333)
    assert wdl_per_mille(np.array([0.0006, 0.0001, 0.9993])) == (1, 0, 999)


@pytest.mark.parametrize("kind", KINDS)
def test_quantize_round_trip(se_model: Path, tmp_path: Path, kind: str, boards: list[chess.Board]) -> None:
    if kind.startswith("onnx") and not onnx_backend.available():
        pytest.skip("onnxruntime is not installed")
    suffix = ".onnx" if kind.startswith("onnx") else ".pt"
    report = quantize_file(QuantizeRequest(model=se_model, recipe=Recipe(kind, calibration_size=256),
                                           output=tmp_path / f"se{suffix}"))
    assert report["family"] == "seresnet" and report["int8_layers"] == SERESNET_LAYERS[kind]
    ev = engine.load_model(tmp_path / f"se{suffix}")
    assert (ev.kind, ev.info.family, ev.has_wdl, ev.info.blocks, ev.info.filters) == (kind, "seresnet", True, 2, 16)
    assert ev.info.metadata["family"] == "seresnet"
    accuracy = report["accuracy"]
    assert accuracy["value_rmse"] < VALUE_RMSE_BOUND[kind], accuracy
    assert accuracy["top1_agreement"] >= TOP1_BOUND[kind], accuracy
    logits, wdl = ev.evaluate_wdl(encode_batch(boards))
    np.testing.assert_allclose(wdl.sum(axis=1), 1.0, atol=1e-5)  # the softmax stays fp32 in every kind
    # the policy logits stay fp32 in every kind: int8 ones (one scale per tensor) take at most 256 values
    assert len(np.unique(logits)) > 256
    for size in (1, 7):
        logits, values = ev.evaluate(encode_batch(boards[:size]))
        assert logits.shape == (size, 4608) and values.shape == (size,)


@pytest.mark.parametrize("backend", ["fp32", "dynamic-int8", "static-int8", "onnx-fp32", "onnx-int8"])
def test_in_memory_conversions(se_model: Path, backend: str, boards: list[chess.Board]) -> None:
    if backend.startswith("onnx") and not onnx_backend.available():
        pytest.skip("onnxruntime is not installed")
    reference = engine.load_model(se_model, "fp32")
    ev = engine.load_model(se_model, backend)
    assert ev.kind == backend and ev.has_wdl
    accuracy = compare(reference, ev, boards)
    assert accuracy.value_rmse < VALUE_RMSE_BOUND.get(backend, 1e-6)
    assert accuracy.top1_agreement >= TOP1_BOUND.get(backend, 1.0) - 0.05  # 64 positions: coarser


def test_quantize_command_reports_the_family(se_model: Path, tmp_path: Path) -> None:
    output = tmp_path / "se_static.pt"
    out = subprocess.run(["azengine", "quantize", "--model", str(se_model), "--type", "static",
                          "--calibration-size", "128", "--output", str(output), "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "(static-int8, seresnet 2x16)" in out.stdout and "top-1 move agreement" in out.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["family"] == "seresnet" and report["accuracy"]["positions"] == 1200
    code = "import sys, engine; e = engine.load_model(sys.argv[1]); print(e.kind, e.info.family, e.has_wdl)"
    fresh = subprocess.run(["python", "-c", code, str(output)], capture_output=True, text=True, timeout=300)
    assert fresh.stdout.split() == ["static-int8", "seresnet", "True"], fresh.stderr


def test_equalization_keeps_the_outputs(se_model: Path, boards: list[chess.Board]) -> None:
    net = build_network(read_weights(se_model))
    planes = encode_batch(boards)
    equalized = equalize_stream(net, [planes])
    assert not torch.equal(equalized.input.bn1.weight, net.input.bn1.weight)  # it did rescale
    x = torch.from_numpy(planes)
    with torch.no_grad():
        (logits, wdl), (logits_eq, wdl_eq) = net(x), equalized(x)
    torch.testing.assert_close(logits_eq, logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(wdl_eq, wdl, atol=1e-5, rtol=1e-4)


def _one_line_error(path: Path, pattern: str) -> None:
    with pytest.raises(engine.ModelFileError, match=pattern) as info:
        engine.load_model(path)
    assert len(str(info.value).splitlines()) == 1 and str(path) in str(info.value)


def test_bad_files(se_model: Path, tmp_path: Path) -> None:
    state = torch.load(se_model, weights_only=True)
    wrong = dict(state, **{"input.conv1.weight": torch.zeros(16, 12, 3, 3)})
    torch.save(wrong, tmp_path / "wrong_input.pt")
    _one_line_error(tmp_path / "wrong_input.pt", r"input\.conv1\.weight has shape \[16, 12, 3, 3\]")
    missing = {k: v for k, v in state.items() if not k.startswith("value.fc2")}
    torch.save(missing, tmp_path / "missing.pt")
    _one_line_error(tmp_path / "missing.pt", "do not fit a 2x16 seresnet")
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "foreign.pt")
    _one_line_error(tmp_path / "foreign.pt", "neither")
    # an archive that says seresnet but maps planes to (logits, value): the probe refuses it
    az = build_network(read_weights(save_random_network(tmp_path / "az.pt", 1, 8, seed=0)))
    (tmp_path / "liar.pt").write_bytes(archive_bytes(az, {"kind": "dynamic-int8", "family": "seresnet"}))
    _one_line_error(tmp_path / "liar.pt", "as a seresnet network does")
    (tmp_path / "unknown.pt").write_bytes(archive_bytes(az, {"kind": "dynamic-int8", "family": "resnet9000"}))
    _one_line_error(tmp_path / "unknown.pt", "network family 'resnet9000'")


def test_onnx_outputs_must_match_the_family(se_model: Path, tmp_path: Path) -> None:
    if not onnx_backend.available():
        pytest.skip("onnxruntime is not installed")
    import onnx

    quantize_file(QuantizeRequest(model=se_model, recipe=Recipe("onnx-fp32"), output=tmp_path / "se.onnx"))
    model = onnx.load_model(str(tmp_path / "se.onnx"))
    meta = json.loads(model.metadata_props[0].value)
    meta["family"] = "alphazero"  # a seresnet graph (outputs policy, wdl) that claims the other family
    model.metadata_props[0].value = json.dumps(meta)
    buffer = io.BytesIO()
    onnx.save_model(model, buffer)
    (tmp_path / "liar.onnx").write_bytes(buffer.getvalue())
    _one_line_error(tmp_path / "liar.onnx", r"outputs \['policy', 'wdl'\], expected .*'value'\]")


def test_architecture_is_read_from_shapes() -> None:
    net = SEResNet(3, 24, se_channels=5)
    shape = architecture_of(net.state_dict())
    assert (shape.blocks, shape.filters, shape.se_channels) == (3, 24, 5)
    assert sum(p.numel() for p in net.policy.parameters()) == 24 * 24 * 9 + 2 * 24 + 24 * 72 + 72  # no Linear


def test_search_reports_the_networks_own_wdl(se_model: Path) -> None:
    """With a WDL network the ``wdl`` of an info line is the network's W/D/L backed up through the tree (not a
    split of Q): after two playouts the best line's draw share is the network's draw probability of the
    position after that move, and the three numbers sum to 1000."""
    from search import Limits, Searcher, SearchParams, wdl_from_q

    evaluator = engine.load_model(se_model, "fp32", threads=1)
    board = chess.Board("r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R1BQ1RK1 w - - 0 9")
    searcher = Searcher(evaluator, SearchParams(minibatch_size=1, nn_cache_size=0, smart_pruning_factor=0.0))
    try:
        result = searcher.search(board, Limits(nodes=2))
    finally:
        searcher.close()
    line = result.info.lines[0]
    after = board.copy()
    after.push(line.pv[0])
    _, wdl = evaluator.evaluate_wdl(encode_batch([after]))
    assert sum(line.wdl) == 1000
    assert abs(line.wdl[1] - 1000 * wdl[0, 1]) <= 1, (line.wdl, wdl)
    assert abs(line.wdl[0] - 1000 * wdl[0, 2]) <= 1 and abs(line.wdl[2] - 1000 * wdl[0, 0]) <= 1  # our view
    assert line.wdl != wdl_from_q(line.q)


def test_squeeze_excitation_stays_fp32(se_model: Path, tmp_path: Path) -> None:
    """The SE's int8 multiply and add moved a trained SE network's value furthest from fp32: static int8
    keeps each block's SE fp32, in TorchScript and in ONNX."""
    from engine.quant.torch_int8 import quantize_static

    net = build_network(read_weights(se_model))
    quantized = quantize_static(net, [encode_batch(heldout_positions(32))], bias_correction=False,
                                weight_rounding="nearest")
    modules = dict(quantized.named_modules())
    for i in range(net.num_blocks):
        for layer in ("fc1", "fc2"):  # float Linear layers (fc1 fused with its ReLU), not quantized ones
            assert "quantized" not in type(modules[f"blocks.{i}.se.{layer}"]).__module__
    assert "quantized" in type(modules["blocks.0.conv1"]).__module__  # the convolutions are int8

    if not onnx_backend.available():
        pytest.skip("onnxruntime is not installed")
    import onnx

    output = tmp_path / "se.onnx"
    quantize_file(QuantizeRequest(model=se_model, recipe=Recipe("onnx-int8", calibration_size=64), output=output))
    graph = onnx.load(output).graph
    quantized_inputs = {name for node in graph.node if node.op_type == "QuantizeLinear" for name in node.input}
    sigmoids = [node for node in graph.node if node.op_type == "Sigmoid"]
    assert len(sigmoids) == net.num_blocks
    assert not any(out in quantized_inputs for node in sigmoids for out in node.output)
