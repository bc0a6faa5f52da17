"""lc0 networks under the int8 backends: ``azengine quantize`` on Maia-1100 (static TorchScript, ONNX),
the files taking lc0's 112 planes like the fp32 network, loading and playing over UCI with every int8
backend, and what is refused (files of older azengine versions among it)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import chess
import chess.engine
import numpy as np
import pytest

from engine.errors import ModelFileError
from engine.inputs import encode_for
from engine.interface import LC0_INPUT
from engine.loader import load_model
from engine.nets.files import sibling_path
from engine.nets.lc0 import encode_lc0_batch
from engine.quant import compare, heldout_positions, read_positions
from tests.lc0_tools import maia_path
from tests.uci_client import engine_command

MAIA = maia_path("maia-1100")
CALIBRATION = "64"  # few positions: the tests check the path, not the best accuracy
ECO_PGN = Path("/usr/share/pgn-extract/eco.pgn")  # real opening lines: positions with their game's moves

pytestmark = [pytest.mark.skipif(MAIA is None, reason="shared/nets/maia-1100.pb.gz is not here"),
              pytest.mark.skipif(not ECO_PGN.is_file(), reason="no /usr/share/pgn-extract/eco.pgn (pgn-extract)")]


def _quantize(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*engine_command(), "quantize", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def maia_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Maia-1100 copied into a fresh folder, with its static-int8 and onnx-int8 siblings made by
    ``azengine quantize`` (default output names, calibrated on the built-in FENs) and their JSON reports."""
    folder = tmp_path_factory.mktemp("maia")
    model = Path(shutil.copy(MAIA, folder / MAIA.name))  # type: ignore[arg-type]
    files = {"fp32": model}
    for kind, extra in (("static-int8", []), ("onnx-int8", ["--format", "onnx"])):
        report = folder / f"{kind}.json"
        done = _quantize("--model", str(model), "--type", "static", *extra, "--calibration-size", CALIBRATION,
                         "--threads", "1", "--json", str(report))
        assert done.returncode == 0, done.stderr
        assert "lc0 6x64" in done.stdout and "top-1 move agreement" in done.stdout
        files[kind] = sibling_path(model, kind)
        files[f"{kind} report"] = report
    return files


@pytest.mark.parametrize("kind", ["static-int8", "onnx-int8"])
def test_quantized_file_is_an_lc0_network(maia_files: dict[str, Path], kind: str) -> None:
    """The written file loads as its kind under ``auto``, names the lc0 family (WDL head, lc0's 112 planes),
    stays close to fp32 on held-out positions and on positions with game history, and refuses 16 planes."""
    path = maia_files[kind]
    assert path.is_file() and path.name == f"maia-1100_static_quantized{'.onnx' if kind == 'onnx-int8' else '.pt'}"
    report = json.loads(maia_files[f"{kind} report"].read_text())
    assert report["family"] == "lc0" and report["type"] == kind and "1858 move" in report["int8_layers"]
    evaluator = load_model(path, "auto", threads=1)
    assert evaluator.kind == kind
    info = evaluator.info
    assert info.family == "lc0" and info.has_wdl and (info.blocks, info.filters) == (6, 64)
    assert info.metadata["input_planes"] == 112 and info.metadata["calibration_positions"] == int(CALIBRATION)
    assert evaluator.input_format == LC0_INPUT and "lc0 6x64 SE" in info.describe()
    fp32 = load_model(maia_files["fp32"], "fp32", threads=1)
    for boards in (heldout_positions(100), _positions_with_history(100)):
        accuracy = compare(fp32, evaluator, boards)
        assert accuracy.top1_agreement > 0.75 and accuracy.value_rmse < 0.15, accuracy
    boards = _positions_with_history(4)
    planes = encode_for(evaluator, boards)
    np.testing.assert_array_equal(planes, encode_lc0_batch(boards))
    logits, wdl = evaluator.evaluate_wdl(planes)  # type: ignore[attr-defined]
    assert logits.shape == (4, 1858) and wdl.shape == (4, 3)
    assert len(np.unique(logits)) > 256  # fp32 logits: int8 ones (one scale per tensor) take at most 256 values
    with pytest.raises(ValueError, match=r"\(B, 112, 8, 8\)"):
        evaluator.evaluate(planes[:, :16])


def _positions_with_history(count: int) -> list[chess.Board]:
    """Positions of ECO's opening lines at least 8 plies deep, with the moves before them, every 10th."""
    boards = [board for board in read_positions(ECO_PGN) if board.ply() >= 8]
    return boards[::10][:count]


def test_pgn_calibration_positions_keep_the_moves_lc0_reads() -> None:
    """Positions read from a PGN file keep the moves before them that lc0's planes read (7 or back to the
    last capture or pawn move), so lc0 networks are calibrated with history."""
    boards = read_positions(ECO_PGN)
    for board in boards[::50]:
        assert len(board.move_stack) >= min(7, board.ply()) and len(board.move_stack) >= min(board.halfmove_clock,
                                                                                              board.ply())
    game = [b for b in boards if b.ply() >= 12][0]
    assert len(game.move_stack) >= 7
    with_history = encode_lc0_batch([game])
    without = encode_lc0_batch([game.copy(stack=False)])
    assert not np.array_equal(with_history, without)  # the history slots differ from a FEN's fill


@pytest.mark.parametrize(("weights", "backend", "note"), [
    ("static-int8", "auto", ""),
    ("onnx-int8", "auto", ""),
    ("fp32", "static-int8", "the static-int8 version of"),  # the sibling file
    ("fp32", "onnx-int8", "the onnx-int8 version of"),
    ("fp32", "dynamic-int8", "quantized in memory"),  # no sibling: quantized at load
])
def test_int8_backends_play_an_lc0_network_over_uci(maia_files: dict[str, Path], weights: str, backend: str,
                                                     note: str, caplog: pytest.LogCaptureFixture) -> None:
    """python-chess plays ``go nodes 200`` twice with each int8 backend; the load lines name the network,
    the backend and where the int8 network came from."""
    caplog.set_level(logging.DEBUG, logger="chess.engine")  # python-chess logs every line the engine sends
    engine = chess.engine.SimpleEngine.popen_uci(engine_command(), timeout=60)
    try:
        engine.configure({"WeightsFile": str(maia_files[weights]), "Backend": backend, "Threads": 1})
        board = chess.Board()
        for _ in range(2):
            result = engine.play(board, chess.engine.Limit(nodes=200), info=chess.engine.INFO_ALL)
            assert result.move in board.legal_moves and result.info.get("nodes", 0) >= 200
            board.push(result.move)
    finally:
        engine.quit()
    loaded = [line for line in caplog.messages if "info string" in line]
    kind = backend if backend != "auto" else weights
    assert any("info string loaded " in line for line in loaded), loaded
    text = " ".join(loaded)
    assert f"lc0 6x64 SE {kind}" in text and note in text, loaded


def test_remaining_refusals(maia_files: dict[str, Path], tmp_path: Path) -> None:
    """What is still refused, each in one line: quantizing an lc0 int8 file again (exit 2, nothing written),
    fp32 of an int8-only lc0 file, and a file whose metadata says it takes other than the 16 planes."""
    output = tmp_path / "again.pt"
    done = _quantize("--model", str(maia_files["static-int8"]), "--type", "static", "--output", str(output))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "already a static-int8" in done.stderr
    assert not output.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ModelFileError, match="static-int8 model and cannot run as fp32"):
        load_model(maia_files["static-int8"], "fp32")
    from engine.nets.weights_file import family_of_metadata

    with pytest.raises(ModelFileError, match="takes 20 input planes; expected 112"):
        family_of_metadata(tmp_path / "x.onnx", {"family": "lc0", "input_planes": 20})


@pytest.mark.parametrize("kind", ["static-int8", "onnx-int8"])
def test_file_of_an_older_azengine_is_refused_in_one_line(maia_files: dict[str, Path], tmp_path: Path,
                                                         kind: str) -> None:
    """An lc0 int8 file whose metadata says 16 input planes (made by an older azengine, which wrapped lc0
    networks in its 16 planes): one line naming the file, saying so and telling to re-quantize; over UCI the
    engine says it with ``info string`` and still answers ``go`` with a legal ``bestmove``."""
    old = tmp_path / maia_files[kind].name
    _rewrite_metadata(maia_files[kind], old, input_planes=16)
    with pytest.raises(ModelFileError) as raised:
        load_model(old, "auto", threads=1)
    message = str(raised.value)
    assert "\n" not in message and str(old) in message
    assert "older azengine" in message and "re-quantize" in message
    engine = chess.engine.SimpleEngine.popen_uci(engine_command(), timeout=60)
    try:
        engine.configure({"WeightsFile": str(old), "Threads": 1})
        result = engine.play(chess.Board(), chess.engine.Limit(nodes=10), info=chess.engine.INFO_ALL)
        assert result.move in chess.Board().legal_moves
    finally:
        engine.quit()


def _rewrite_metadata(source: Path, target: Path, **changes: object) -> None:
    """A copy of an azengine int8 file (TorchScript archive or ONNX) with its metadata entries changed."""
    if source.suffix == ".onnx":
        import onnx

        model = onnx.load_model(str(source))
        entry = next(p for p in model.metadata_props if p.key == "azengine")
        entry.value = json.dumps({**json.loads(entry.value), **changes})
        onnx.save_model(model, str(target))
        return
    import torch

    from engine.backends.torch_backend import METADATA_FILE

    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(source), _extra_files=extra)
    torch.jit.save(module, str(target), _extra_files={METADATA_FILE: json.dumps({**json.loads(extra[METADATA_FILE]),
                                                                                **changes})})


@pytest.mark.parametrize("backend", ["static-int8", "onnx-int8"])
def test_int8_backend_of_a_pb_gz_without_siblings_quantizes_in_memory(backend: str) -> None:
    """An int8 backend asked of a ``.pb.gz`` with no int8 file beside it (shared/nets has none): quantized at
    load time on the built-in positions, said in the notes, close to fp32."""
    assert not sibling_path(MAIA, backend).exists()  # type: ignore[arg-type]
    evaluator = load_model(MAIA, backend, threads=1)  # type: ignore[arg-type]
    assert evaluator.kind == backend and evaluator.info.family == "lc0"
    assert any("quantized in memory" in note for note in evaluator.info.notes), evaluator.info.notes
    accuracy = compare(load_model(MAIA, "fp32", threads=1), evaluator, heldout_positions(100))  # type: ignore[arg-type]
    assert accuracy.top1_agreement > 0.75 and accuracy.value_rmse < 0.15, accuracy


def test_onnx_int8_file_loads_without_torch(maia_files: dict[str, Path]) -> None:
    """The onnx-int8 file of an lc0 network loads (and evaluates) without importing torch, as ours do."""
    code = ("import sys; from engine.inputs import encode_for; from engine.loader import load_model; import chess; "
            f"ev = load_model({str(maia_files['onnx-int8'])!r}, 'auto', 1); "
            "assert ev.evaluate(encode_for(ev, [chess.Board()]))[0].shape == (1, 1858); "
            "print(ev.kind, ev.info.family, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["onnx-int8", "lc0", "False"]
