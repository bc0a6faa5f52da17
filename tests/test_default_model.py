"""The bundled default network: a seresnet state_dict with its int8 and ONNX files, and sensible moves in clear
positions."""

from __future__ import annotations

import json

import chess
import pytest
import torch

import engine
from engine.cpu import cpu_kind
from engine.loader import BUNDLED_BACKEND_BY_CPU, bundled_backend, load_for_play, load_model
from engine.nets.files import read_weights
from engine.nets.seresnet import CAPPED_KEY, SEResNet
from search import Limits, Searcher, SearchParams

from networks import BUNDLED_NETWORK  # isort: skip

# (FEN, the move a trained network must find) -- a hanging queen to take, a mate in one to play
CLEAR_POSITIONS = [
    ("rnb1kbnr/pppp1ppp/8/4p1q1/3PP3/8/PPP2PPP/RNBQKBNR w KQkq - 1 3", "c1g5"),  # bishop takes the queen
    ("r1bqkbnr/pppp1ppp/2n5/4p3/2B1P3/5Q2/PPPP1PPP/RNB1K1NR w KQkq - 4 4", "f3f7"),  # scholar's mate
    ("6k1/5ppp/8/8/8/8/5PPP/3R2K1 w - - 0 1", "d1d8"),  # back-rank mate
    ("rnbqkbnr/ppp2ppp/8/3pp3/4P1Q1/8/PPPP1PPP/RNB1KBNR b KQkq - 1 3", "c8g4"),  # black takes the queen
]


def _card() -> dict:
    path = engine.default_model_path()
    card = path.with_name(path.name + ".json")
    return json.loads(card.read_text()) if card.is_file() else {}


def test_default_model_is_a_seresnet_state_dict() -> None:
    """The fp32 file holds exactly a capped no-SE SEResNet's tensors, of the size the tests expect, and its
    caps are finite (each bounds what int8 quantizes)."""
    weights = read_weights(engine.default_model_path())
    assert weights.kind == "fp32"
    assert f"{weights.family} {weights.blocks}x{weights.filters}" == BUNDLED_NETWORK
    reference = SEResNet(weights.blocks, weights.filters, se_channels=0, capped=True).state_dict()
    caps = {key: tensor for key, tensor in weights.state_dict.items() if key.endswith((".low", ".high"))}
    assert CAPPED_KEY in caps and all(torch.isfinite(t) for t in caps.values())
    assert set(weights.state_dict) == set(reference)  # the caps' keys are stored in training's order
    for key, tensor in reference.items():
        assert weights.state_dict[key].shape == tensor.shape, key
        assert weights.state_dict[key].dtype == tensor.dtype, key
    assert not any(torch.isnan(t).any() for t in weights.state_dict.values() if t.is_floating_point())


def test_default_model_static_sibling_loads() -> None:
    evaluator = load_model(engine.default_model_path(), backend="static-int8")
    assert evaluator.kind == "static-int8"
    assert any("static_quantized" in note for note in evaluator.info.notes)


def _hanging_queen(fen: str) -> bool:
    return fen in (CLEAR_POSITIONS[0][0], CLEAR_POSITIONS[3][0])


def test_bundled_network_plays_its_cpu_form_under_auto() -> None:
    """The engine's default (``Backend=auto``) runs the bundled network in the form chosen for this CPU."""
    played = load_for_play(engine.default_model_path(), "auto", threads=1)
    assert played.kind == bundled_backend() == BUNDLED_BACKEND_BY_CPU[cpu_kind()]
    assert any("static_quantized." in note for note in played.info.notes)
    assert bundled_backend(frozenset({"avx2"})) == "onnx-int8"
    assert load_for_play(engine.default_model_path(), "onnx-fp32", threads=1).info.path.endswith(
        "azengine_default.onnx")  # the shipped fp32 ONNX file, no conversion at load time
    assert load_for_play(engine.default_model_path(), "fp32", threads=1).kind == "fp32"


@pytest.mark.parametrize("backend", ["fp32", "static-int8"])
@pytest.mark.parametrize("nodes", [1, 200])
@pytest.mark.parametrize("fen,expected", CLEAR_POSITIONS)
def test_default_model_plays_clear_moves(fen: str, expected: str, nodes: int, backend: str,
                                         request: pytest.FixtureRequest) -> None:
    card = _card()
    if not card.get("trained", False):
        pytest.skip("the bundled network is the untrained placeholder (see its model card)")
    if _hanging_queen(fen) and card.get("known_weakness") == "hanging-queen":
        # v0 (docs/MODEL.md) plays Nf3 / Nf6 here: its value head has not learnt material yet. Strict:
        # the day a retrained network takes the queen, this fails until the card drops the weakness.
        request.applymarker(pytest.mark.xfail(strict=True, reason="v0 network misses a hanging queen"))
    evaluator = load_model(engine.default_model_path(), backend)
    searcher = Searcher(evaluator, SearchParams())
    result = searcher.search(chess.Board(fen), Limits(nodes=nodes))
    searcher.close()
    assert result.best_move == chess.Move.from_uci(expected)


@pytest.mark.parametrize("backend", ["static-int8", "onnx-int8"])
def test_shipped_int8_files_stay_close_to_fp32(backend: str) -> None:
    """The int8 files shipped beside the network against fp32 on the 1,200 held-out positions. v13 (capped)
    measured (`azengine quantize`): static-int8 value RMSE 0.0210, KL 0.0008, top-1 agreement 96.0%; onnx-int8
    0.0120, 0.0005, 96.6% (v11, uncapped, had 0.028-0.034, 0.003 and 93-94%: these bounds would fail it)."""
    from engine.quant.accuracy import compare
    from engine.quant.calibration import heldout_positions

    boards = heldout_positions()
    reference = load_model(engine.default_model_path(), "fp32", threads=1)
    accuracy = compare(reference, load_model(engine.default_model_path(), backend, threads=1), boards)
    assert accuracy.positions == 1200
    assert accuracy.value_rmse < 0.026 and accuracy.top1_agreement > 0.95, accuracy
    assert accuracy.policy_kl < 0.0015, accuracy
