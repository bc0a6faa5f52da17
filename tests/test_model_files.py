"""Tests of the network definition, model files and evaluators (fp32, dynamic-int8, static-int8).

Networks are small random ones made here, with randomised batch-norm statistics so that folding
BatchNorm into the convolutions is exercised. The int8 tolerances below were measured on these
networks (see the constants) and carry a margin of about 2x-4x.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import chess
import numpy as np
import pytest
import torch
from torch import nn

import engine
from engine import AlphaZeroNet, ModelFileError, encode_batch, load_model, move_priors
from engine.backends import torch_backend
from engine.loader import load_for_play
from engine.nets.files import read_weights, sibling_path
from engine.quant import torch_int8
from engine.quant.calibration import builtin_calibration_planes
from engine.quant.calibration import heldout_positions as builtin_heldout_boards

# Measured with random_net(2, 16, seed=0) on the 1200 held-out positions (torch 2.13, x86 engine):
#   dynamic-int8: logits max|d| 0.028, mean|d| 0.004; values max|d| 0.036, mean|d| 0.005; top-1 99%
#   static-int8:  logits max|d| 0.41,  mean|d| 0.030; values max|d| 0.23,  mean|d| 0.028; top-1 94%,
#                 value correlation 0.987
FP32_ATOL = 1e-4
# fbgemm chooses its int8 kernels by batch size, so a row's int8 activations may round one step
# differently alone than in a batch. 0.02 held on AVX-512 VNNI CPUs; on an AVX2-only EPYC, static-int8
# row 0 of 7 differed from the row alone by up to 0.0203. Rows mixed up by a batching bug differ by ~1.
INT8_BATCH_ROW_TOL = 5e-2
DYNAMIC_TOL = {"logits_max": 0.1, "logits_mean": 0.015, "values_max": 0.1, "values_mean": 0.015, "top1": 0.95}
# On an AVX2-only EPYC (no VNNI) static-int8's worst value error was 0.508 (fbgemm's AVX2 int8 path differs
# from VNNI's); values_max allows that, the mean, top-1 and correlation bounds are as measured above.
STATIC_TOL = {"logits_max": 1.0, "logits_mean": 0.08, "values_max": 0.6, "values_mean": 0.07, "top1": 0.85,
              "value_corr": 0.95}


# ----- helpers -------------------------------------------------------------------------------------


def random_net(blocks: int, filters: int, seed: int = 0) -> AlphaZeroNet:
    """An eval-mode random network whose batch norms have non-trivial statistics and affine terms."""
    torch.manual_seed(seed)
    net = AlphaZeroNet(blocks, filters).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(torch.rand(c, generator=gen) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(c, generator=gen) * 0.15 + 0.05)
                module.weight.copy_(torch.rand(c, generator=gen) * 0.4 + 0.8)
                module.bias.copy_(torch.rand(c, generator=gen) * 0.2)
                module.num_batches_tracked.fill_(1000)
        net.valueHead.fc2.weight.mul_(8.0)  # spread the values over more of [-1, 1]
    return net


def eager(net: nn.Module, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference outputs of the eager module."""
    with torch.inference_mode():
        logits, values = net(torch.from_numpy(planes))
    return logits.numpy(), values.numpy()


def top1_agreement(boards: list[chess.Board], logits_a: np.ndarray, logits_b: np.ndarray) -> float:
    """Share of positions where both logits give the same highest-prior legal move."""
    same = 0
    for i, board in enumerate(boards):
        a, b = move_priors(board, logits_a[i]), move_priors(board, logits_b[i])
        same += max(a, key=a.__getitem__) == max(b, key=b.__getitem__)
    return same / len(boards)


@pytest.fixture(scope="module")
def net() -> AlphaZeroNet:
    return random_net(2, 16, seed=0)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, net: AlphaZeroNet) -> Path:
    """A folder with the fp32 state_dict ``net.pt`` of the module's random network."""
    folder = tmp_path_factory.mktemp("models")
    torch.save(net.state_dict(), folder / "net.pt")
    return folder


@pytest.fixture(scope="module")
def heldout() -> tuple[list[chess.Board], np.ndarray]:
    boards = builtin_heldout_boards()
    return boards, encode_batch(boards)


@pytest.fixture(scope="module")
def reference(net: AlphaZeroNet, heldout: tuple[list[chess.Board], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    logits, values = eager(net, heldout[1])
    # the test is only meaningful if the random network's outputs depend on the position
    assert logits.std() > 0.1 and values.std() > 0.05
    return logits, values


# ----- the network's layout ------------------------------------------------------------------------


def expected_keys(blocks: int, filters: int) -> dict[str, list[int]]:
    """pytorch-alpha-zero's state_dict keys and shapes, written out from DESIGN.md."""
    keys: dict[str, list[int]] = {}

    def conv(name: str, out_c: int, in_c: int, size: int) -> None:
        keys[f"{name}.weight"] = [out_c, in_c, size, size]
        keys[f"{name}.bias"] = [out_c]

    def bn(name: str, channels: int) -> None:
        for param in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{name}.{param}"] = [channels]
        keys[f"{name}.num_batches_tracked"] = []

    def linear(name: str, out_f: int, in_f: int) -> None:
        keys[f"{name}.weight"] = [out_f, in_f]
        keys[f"{name}.bias"] = [out_f]

    conv("convBlock1.conv1", filters, 16, 3)
    bn("convBlock1.bn1", filters)
    for i in range(blocks):
        conv(f"residualBlocks.{i}.conv1", filters, filters, 3)
        bn(f"residualBlocks.{i}.bn1", filters)
        conv(f"residualBlocks.{i}.conv2", filters, filters, 3)
        bn(f"residualBlocks.{i}.bn2", filters)
    conv("valueHead.conv1", 1, filters, 1)
    bn("valueHead.bn1", 1)
    linear("valueHead.fc1", 256, 64)
    linear("valueHead.fc2", 1, 256)
    conv("policyHead.conv1", 2, filters, 1)
    bn("policyHead.bn1", 2)
    linear("policyHead.fc1", 4608, 128)
    return keys


@pytest.mark.parametrize(("blocks", "filters"), [(20, 256), (10, 128), (1, 8)])
def test_state_dict_layout_is_pytorch_alpha_zero(blocks: int, filters: int) -> None:
    state = AlphaZeroNet(blocks, filters).state_dict()
    got = {key: list(tensor.shape) for key, tensor in state.items()}
    assert got == expected_keys(blocks, filters)
    if (blocks, filters) == (20, 256):
        assert got["residualBlocks.19.conv2.weight"] == [256, 256, 3, 3]
        assert got["policyHead.fc1.weight"] == [4608, 128]
        assert got["valueHead.fc1.weight"] == [256, 64]
        assert got["convBlock1.conv1.weight"] == [256, 16, 3, 3]
        assert state["residualBlocks.7.bn2.num_batches_tracked"].dtype == torch.int64


def test_forward_shapes_and_value_range(net: AlphaZeroNet) -> None:
    planes = encode_batch([chess.Board(), chess.Board("8/8/8/4k3/8/8/8/4K2Q b - - 0 1")])
    logits, values = eager(net, planes)
    assert logits.shape == (2, 4608) and values.shape == (2,)
    assert np.all(np.abs(values) <= 1.0)


# ----- loading good files ----------------------------------------------------------------------------


def test_fp32_state_dict_loads_with_identical_outputs(
    model_dir: Path, net: AlphaZeroNet, heldout: tuple[list[chess.Board], np.ndarray],
    reference: tuple[np.ndarray, np.ndarray],
) -> None:
    weights = read_weights(model_dir / "net.pt")
    assert (weights.kind, weights.blocks, weights.filters) == ("fp32", 2, 16)
    for evaluator in (load_model(model_dir / "net.pt", backend="auto", threads=1),
                      load_model(model_dir / "net.pt", backend="fp32", threads=1),
                      load_for_play(model_dir / "net.pt", backend="auto", threads=1)):  # not the bundled one
        assert evaluator.kind == "fp32"
        logits, values = evaluator.evaluate(heldout[1])
        assert logits.dtype == np.float32 and values.dtype == np.float32
        np.testing.assert_allclose(logits, reference[0], atol=FP32_ATOL, rtol=1e-4)
        np.testing.assert_allclose(values, reference[1], atol=FP32_ATOL, rtol=1e-4)


def test_legacy_torch_save_format_loads(tmp_path: Path, net: AlphaZeroNet) -> None:
    """pytorch-alpha-zero's older files use torch's pre-1.6 (non-zip) serialisation."""
    path = tmp_path / "legacy.pt"
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    planes = encode_batch(builtin_heldout_boards()[:50])
    logits, values = load_model(path).evaluate(planes)
    ref_logits, ref_values = eager(net, planes)
    np.testing.assert_allclose(logits, ref_logits, atol=FP32_ATOL, rtol=1e-4)
    np.testing.assert_allclose(values, ref_values, atol=FP32_ATOL, rtol=1e-4)


@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("backend", ["fp32", "dynamic-int8", "static-int8"])
def test_evaluate_any_batch_size(model_dir: Path, backend: str, batch_size: int) -> None:
    evaluator = load_model(model_dir / "net.pt", backend=backend)
    boards = builtin_heldout_boards()[:batch_size]
    logits, values = evaluator.evaluate(encode_batch(boards))
    assert logits.shape == (batch_size, 4608) and values.shape == (batch_size,)
    assert logits.dtype == np.float32 and values.dtype == np.float32
    assert np.all(np.isfinite(logits)) and np.all(np.abs(values) <= 1.0)
    # the rows do not depend on what else is in the batch
    single_logits, single_values = evaluator.evaluate(encode_batch(boards[:1]))
    tol = FP32_ATOL if backend == "fp32" else INT8_BATCH_ROW_TOL
    np.testing.assert_allclose(logits[0], single_logits[0], atol=tol)
    np.testing.assert_allclose(values[0], single_values[0], atol=tol)


def check_close(stats_tol: dict[str, float], boards: list[chess.Board], logits: np.ndarray, values: np.ndarray,
                reference: tuple[np.ndarray, np.ndarray]) -> None:
    """Compare int8 outputs with the fp32 reference under the tolerances ``stats_tol``."""
    ref_logits, ref_values = reference
    dl, dv = np.abs(logits - ref_logits), np.abs(values - ref_values)
    assert dl.max() < stats_tol["logits_max"], dl.max()
    assert dl.mean() < stats_tol["logits_mean"], dl.mean()
    assert dv.max() < stats_tol["values_max"], dv.max()
    assert dv.mean() < stats_tol["values_mean"], dv.mean()
    agreement = top1_agreement(boards[:300], logits[:300], ref_logits[:300])
    assert agreement >= stats_tol["top1"], agreement
    if "value_corr" in stats_tol:
        assert np.corrcoef(values, ref_values)[0, 1] > stats_tol["value_corr"]


def test_dynamic_int8_in_memory_and_from_file(
    tmp_path: Path, model_dir: Path, net: AlphaZeroNet, heldout: tuple[list[chess.Board], np.ndarray],
    reference: tuple[np.ndarray, np.ndarray],
) -> None:
    boards, planes = heldout
    in_memory = load_model(model_dir / "net.pt", backend="dynamic-int8")
    assert in_memory.kind == "dynamic-int8"
    assert any("in memory" in note for note in in_memory.info.notes)
    logits, values = in_memory.evaluate(planes)
    check_close(DYNAMIC_TOL, boards, logits, values, reference)

    # pytorch-alpha-zero's quantized files: the state_dict of torch's quantize_dynamic on the Linear layers
    path = tmp_path / "AlphaZeroNet_2x16_quantized.pt"
    with torch_backend.quiet():
        torch.save(torch.ao.quantization.quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8).state_dict(), path)
    assert read_weights(path).kind == "dynamic-int8"
    from_file = load_model(path)
    assert from_file.kind == "dynamic-int8"
    file_logits, file_values = from_file.evaluate(planes)
    # the file keeps BatchNorm unfolded, the in-memory version folds it: equal up to int8 rounding
    check_close(DYNAMIC_TOL, boards, file_logits, file_values, reference)
    assert load_model(path, backend="dynamic-int8").kind == "dynamic-int8"

    # saved as the sibling of an fp32 file, it is what dynamic-int8 of that file loads
    torch.save(net.state_dict(), tmp_path / "mine.pt")
    path.rename(tmp_path / "mine_dynamic_quantized.pt")
    via_sibling = load_model(tmp_path / "mine.pt", backend="dynamic-int8")
    assert any("mine_dynamic_quantized.pt" in note for note in via_sibling.info.notes)
    # (dynamic quantization scales activations per batch, so compare equal batches)
    np.testing.assert_allclose(via_sibling.evaluate(planes[:32])[0], from_file.evaluate(planes[:32])[0], atol=1e-6)


def save_static_archive(net: AlphaZeroNet, path: Path) -> None:
    """Quantize ``net`` statically on the built-in calibration positions, as ``load_model`` does in memory
    (weights rounded to nearest), and save the archive."""
    module = torch_int8.quantize_static(net, [builtin_calibration_planes()], weight_rounding="nearest")
    meta = {"kind": "static-int8", "blocks": net.num_blocks, "filters": net.num_filters,
            "qengine": torch_int8.DEFAULT_QENGINE, "calibration": "builtin"}
    path.write_bytes(torch_int8.archive_bytes(module, meta))


def test_static_int8_archive_and_sibling(
    tmp_path: Path, net: AlphaZeroNet, heldout: tuple[list[chess.Board], np.ndarray],
    reference: tuple[np.ndarray, np.ndarray],
) -> None:
    boards, planes = heldout
    fp32_path = tmp_path / "mynet.pt"
    torch.save(net.state_dict(), fp32_path)

    # no sibling yet: quantized in memory, and says so
    in_memory = load_model(fp32_path, backend="static-int8")
    assert in_memory.kind == "static-int8"
    assert any("in memory" in note for note in in_memory.info.notes)
    mem_logits, mem_values = in_memory.evaluate(planes)
    check_close(STATIC_TOL, boards, mem_logits, mem_values, reference)

    # the saved archive, loaded by itself
    archive = tmp_path / "mynet_static_quantized.pt"
    assert sibling_path(fp32_path, "static-int8") == archive
    save_static_archive(net, archive)
    weights = read_weights(archive)
    assert (weights.kind, weights.blocks, weights.filters) == ("static-int8", 2, 16)
    assert weights.metadata is not None and weights.metadata["format_version"] == torch_int8.ARCHIVE_FORMAT_VERSION
    direct = load_model(archive)
    assert direct.kind == "static-int8"
    logits, values = direct.evaluate(planes)
    check_close(STATIC_TOL, boards, logits, values, reference)
    np.testing.assert_allclose(logits, mem_logits, atol=1e-5)  # the same calibration gives the same model

    # static-int8 asked of the fp32 file now picks the sibling
    via_sibling = load_model(fp32_path, backend="static-int8")
    assert via_sibling.kind == "static-int8"
    assert any(archive.name in note for note in via_sibling.info.notes)
    assert not any("in memory" in note for note in via_sibling.info.notes)
    # (the policy Linear is dynamic int8, whose input scale follows the batch: compare equal batches)
    sib_logits, sib_values = via_sibling.evaluate(planes)
    np.testing.assert_array_equal(sib_logits, logits)
    np.testing.assert_array_equal(sib_values, values)

    # fp32 asked of an int8-only file is an error naming the file
    with pytest.raises(ModelFileError, match="mynet_static_quantized.pt"):
        load_model(archive, backend="fp32")
    with pytest.raises(ModelFileError, match="mynet_static_quantized.pt"):
        load_model(archive, backend="dynamic-int8")


def test_fp32_of_a_dynamic_file_is_an_error(tmp_path: Path, net: AlphaZeroNet) -> None:
    path = tmp_path / "dyn.pt"
    torch.save(torch_int8.quantize_dynamic_linear(net).state_dict(), path)
    with pytest.raises(ModelFileError, match="dyn.pt"):
        load_model(path, backend="fp32")
    with pytest.raises(ModelFileError, match="dyn.pt"):
        load_model(path, backend="static-int8")


def test_unknown_backend_is_a_value_error(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="backend"):
        load_model(model_dir / "net.pt", backend="int4")


# ----- bad files -----------------------------------------------------------------------------------


def _bad_files(folder: Path, net: AlphaZeroNet) -> dict[str, Path]:
    """Every kind of bad file, by name."""
    files: dict[str, Path] = {}

    def put(name: str) -> Path:
        files[name] = folder / f"{name}.pt"
        return files[name]

    files["missing"] = folder / "does_not_exist.pt"
    put("empty").write_bytes(b"")
    put("text").write_text("this is not a network\n" * 20)
    good = folder / "good.pt"
    torch.save(net.state_dict(), good)
    data = good.read_bytes()
    put("truncated").write_bytes(data[: len(data) // 2])
    legacy = folder / "legacy_good.pt"
    torch.save(net.state_dict(), legacy, _use_new_zipfile_serialization=False)
    data = legacy.read_bytes()
    put("truncated_legacy").write_bytes(data[: len(data) // 2])
    torch.save(torch.zeros(3, 4), put("plain_tensor"))
    torch.save({"weight": torch.zeros(3), "bias": torch.ones(3)}, put("unrelated_dict"))
    torch.save([torch.zeros(3)], put("tensor_list"))
    torch.save({"convBlock1.conv1.weight": 3}, put("int_instead_of_tensor"))
    wrong_shape = net.state_dict()
    wrong_shape["policyHead.fc1.weight"] = torch.zeros(4608, 64)
    torch.save(wrong_shape, put("wrong_shape"))
    missing_keys = {k: v for k, v in net.state_dict().items() if not k.startswith("valueHead.fc2")}
    torch.save(missing_keys, put("missing_keys"))
    wrong_input = net.state_dict()
    wrong_input["convBlock1.conv1.weight"] = torch.zeros(16, 112, 3, 3)  # an lc0-like input layer
    torch.save(wrong_input, put("wrong_input_planes"))
    gap = {k: v for k, v in random_net(3, 8).state_dict().items() if not k.startswith("residualBlocks.1.")}
    torch.save(gap, put("missing_block"))
    other = random_net(2, 16)
    other.policyHead.fc1 = nn.Linear(128, 100)
    torch.save(torch_int8.quantize_dynamic_linear(other).state_dict(), put("dynamic_wrong_shape"))
    with torch_backend.quiet():
        foreign = torch.jit.trace(net, torch.zeros(2, 16, 8, 8), check_trace=False)
        torch.jit.save(foreign, put("torchscript_without_metadata"))

    class Identity(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    put("archive_of_other_module").write_bytes(torch_int8.archive_bytes(Identity(), {"kind": "static-int8"}))
    archive = folder / "static_good.pt"
    save_static_archive(net, archive)
    data = archive.read_bytes()
    put("truncated_archive").write_bytes(data[: len(data) // 2])
    with zipfile.ZipFile(put("zip_of_text"), "w") as handle:
        handle.writestr("notes.txt", "hello")
    files["directory"] = folder / "a_directory.pt"
    files["directory"].mkdir()
    return files


BAD_KINDS = [
    "missing", "empty", "text", "truncated", "truncated_legacy", "plain_tensor", "unrelated_dict", "tensor_list",
    "int_instead_of_tensor", "wrong_shape", "missing_keys", "wrong_input_planes", "missing_block",
    "dynamic_wrong_shape", "torchscript_without_metadata", "archive_of_other_module", "truncated_archive",
    "zip_of_text", "directory",
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, net: AlphaZeroNet) -> dict[str, Path]:
    return _bad_files(tmp_path_factory.mktemp("bad"), net)


def test_bad_file_kinds_are_all_made(bad_files: dict[str, Path]) -> None:
    assert sorted(bad_files) == sorted(BAD_KINDS)


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("backend", ["auto", "fp32", "static-int8"])
def test_bad_file_gives_model_file_error_naming_it(bad_files: dict[str, Path], kind: str, backend: str) -> None:
    path = bad_files[kind]
    with pytest.raises(ModelFileError) as info:
        load_model(path, backend=backend)
    message = str(info.value)
    assert str(path) in message
    assert info.value.path == str(path)
    assert len(message.splitlines()) == 1  # one clear line for 'info string'


def test_default_model_loads() -> None:
    path = engine.default_model_path()
    if not path.is_file():
        pytest.skip(f"the default model {path} is not there yet (it is being trained elsewhere)")
    evaluator = load_model(path)
    logits, values = evaluator.evaluate(encode_batch([chess.Board()]))
    assert logits.shape == (1, 4608) and values.shape == (1,)
    assert abs(float(values[0])) <= 1.0
    static = load_model(path, backend="static-int8")
    assert static.kind == "static-int8"
