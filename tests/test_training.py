"""Training pipeline: Stockfish data generation into shards, and training / resuming / exporting a network."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import chess
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import engine
from engine.encoding import encode_batch, index_to_move, move_to_index
from engine.training import datagen, train, warmstart
from engine.training.shards import (
    KEYS,
    count_positions,
    expand_planes,
    list_shards,
    load_shards,
    soft_policy,
    validation_mask,
)

try:
    from engine.training.openings import find_stockfish

    find_stockfish()
except FileNotFoundError:  # pragma: no cover - stockfish is a Debian package on the dev machines
    pytest.skip("stockfish is not installed", allow_module_level=True)

CFG = datagen.GenConfig(nodes=200, shard_size=12)


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> object:
    threads = torch.get_num_threads()  # train(--threads 1) sets the process-wide count
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sf")
    assert datagen.generate(out, 30, workers=1, cfg=CFG, seed=1, progress_bar=False) == 30
    return out


def boards_of(fens: np.ndarray) -> list[chess.Board]:
    return [chess.Board(f.decode()) for f in fens]


def test_shards_hold_what_the_encoder_gives(shard_dir: Path) -> None:
    shards = list_shards(shard_dir)
    assert shards  # whole games per shard: a shard is written once it holds >= 12 positions
    assert not list(shard_dir.glob("*.tmp"))
    data = load_shards(shards, KEYS)
    boards = boards_of(data["fen"])
    assert len(boards) == 30
    np.testing.assert_array_equal(expand_planes(data["bitboards"], data["black"]), encode_batch(boards))
    np.testing.assert_array_equal(data["black"], [b.turn == chess.BLACK for b in boards])
    np.testing.assert_array_equal(data["ply"], [b.ply() for b in boards])
    assert not any(b.is_game_over() for b in boards)
    assert np.all(np.abs(data["value"]) <= 1.0)
    assert set(np.unique(data["result"])) <= {-1, 0, 1}
    assert len(set(data["fen"].tolist())) == 30  # early positions are stored once per worker run


def test_policy_targets_are_legal_moves(shard_dir: Path) -> None:
    data = load_shards(list_shards(shard_dir), KEYS)
    for board, indices, cps in zip(boards_of(data["fen"]), data["policy_index"], data["policy_cp"], strict=True):
        assert indices[0] >= 0
        stored = [int(i) for i in indices if i >= 0]
        assert len(stored) == len(set(stored)) == min(CFG.multipv, len(stored))
        legal = {move_to_index(board, m) for m in board.legal_moves}
        for index in stored:
            assert index in legal
            move = index_to_move(board, index)
            assert board.is_legal(move) and move_to_index(board, move) == index
        assert cps[0] == max(cps[: len(stored)])  # best move first
    probs = soft_policy(data["policy_index"], data["policy_cp"], 50.0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(probs[data["policy_index"] < 0] == 0)
    assert np.all(probs[:, 0] >= probs.max(axis=1) - 1e-6)


def test_rerun_continues_without_duplicating(shard_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sf"
    shutil.copytree(shard_dir, out)
    before = {p.name: p.read_bytes() for p in list_shards(out)}
    assert datagen.generate(out, 30, cfg=CFG, seed=1, progress_bar=False) == 0
    assert datagen.generate(out, 45, cfg=CFG, seed=1, progress_bar=False) == 15
    assert count_positions(out) == 45
    after = list_shards(out)
    assert all(before[p.name] == p.read_bytes() for p in after if p.name in before)
    new = [p for p in after if p.name not in before]
    old_games = set(load_shards([shard_dir / n for n in before], ["game"])["game"].tolist())
    assert not old_games & set(load_shards(new, ["game"])["game"].tolist())


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(pid: int) -> set[int]:
    """PIDs of every live process below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_sigterm_stops_workers_and_keeps_finished_games(tmp_path: Path) -> None:
    out = tmp_path / "sf"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.training.datagen", "--out", str(out), "--positions", "100000",
         "--workers", "2", "--nodes", "200", "--shard-size", "100000", "--no-progress"],
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(_descendants(proc.pid)) < 4 and time.monotonic() < deadline:  # 2 workers, 2 Stockfish
        time.sleep(0.2)
    time.sleep(5)  # let them finish some games
    children = _descendants(proc.pid)
    assert len(children) >= 4
    proc.send_signal(signal.SIGTERM)  # to the parent only, as `kill PID` does
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert "run the same command to continue" in err
    deadline = time.monotonic() + 10
    while any(map(_running, children)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [c for c in children if _running(c)], "workers or Stockfish outlived the generator"
    assert count_positions(out) > 0  # games finished before the signal were written, not lost


def test_validation_split_is_a_stable_hash() -> None:
    games = np.arange(20_000, dtype=np.uint64) * np.uint64(7919)
    mask = validation_mask(games, 0.1)
    assert 0.08 < mask.mean() < 0.12
    np.testing.assert_array_equal(mask, validation_mask(games.copy(), 0.1))
    assert not validation_mask(games, 0.0).any() and validation_mask(games, 1.0).all()


def test_policy_loss_matches_cross_entropy_for_hard_targets() -> None:
    logits = torch.randn(5, 4608)
    best = torch.randint(0, 4608, (5,))
    index = torch.stack([best, torch.zeros(5, dtype=torch.long)], dim=1)
    prob = torch.tensor(soft_policy(np.array([[1, -1]] * 5), np.array([[10, 0]] * 5), 0.0))
    assert torch.allclose(train.policy_loss(logits, index, prob), F.cross_entropy(logits, best))


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(data), "--out", str(out), "--blocks", "1", "--filters", "8", "--threads", "1",
            "--no-progress", *extra]


def test_overfit_export_and_load(shard_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = train.parse_args(train_args(shard_dir, out, "--epochs", "25", "--batch-size", "10", "--lr", "1e-2",
                                       "--val-fraction", "0"))
    metrics = train.train(args)
    history = metrics["history"]
    first = history[0]["train_value_mse"] + history[0]["train_policy_loss"]
    last = history[-1]["train_value_mse"] + history[-1]["train_policy_loss"]
    assert last < 0.7 * first, (first, last)
    assert (out / "metrics.json").is_file() and (out / "checkpoint.pt").is_file()

    state = torch.load(out / "model.pt", weights_only=True)
    assert set(state) == set(engine.AlphaZeroNet(1, 8).state_dict())
    assert all(t.dtype in (torch.float32, torch.int64) for t in state.values())
    evaluator = engine.load_model(out / "model.pt")
    assert (evaluator.info.blocks, evaluator.info.filters) == (1, 8)
    data = load_shards(list_shards(shard_dir), KEYS)
    logits, values = evaluator.evaluate(expand_planes(data["bitboards"], data["black"]))
    assert logits.shape == (30, 4608) and values.shape == (30,)
    # having seen these positions 25 times, the net agrees with Stockfish's best move more often than not
    assert np.mean(logits.argmax(axis=1) == data["policy_index"][:, 0]) > 0.5


def test_interrupted_training_resumes_to_the_same_weights(shard_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["--epochs", "2", "--batch-size", "8", "--val-fraction", "0"]
    straight = train.train(train.parse_args(train_args(shard_dir, tmp_path / "a", *argv)))

    real_step, calls = train.train_step, []

    def interrupting_step(*a: object, **k: object) -> tuple[float, float]:
        calls.append(1)
        if len(calls) == 5:  # in the second epoch (3 steps per epoch)
            raise KeyboardInterrupt
        return real_step(*a, **k)

    monkeypatch.setattr(train, "train_step", interrupting_step)
    with pytest.raises(SystemExit):
        train.train(train.parse_args(train_args(shard_dir, tmp_path / "b", *argv)))
    checkpoint = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["step"]) == (1, 1)
    monkeypatch.setattr(train, "train_step", real_step)
    resumed = train.train(train.parse_args(train_args(shard_dir, tmp_path / "b", *argv)))

    assert len(resumed["history"]) == len(straight["history"]) == 2
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)


def test_sigterm_saves_a_checkpoint_and_exits_130(shard_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.training.train",
         *train_args(shard_dir, out, "--epochs", "100000", "--batch-size", "8", "--val-fraction", "0")],
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (out / "checkpoint.pt").exists(), "no checkpoint after the first epoch"
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # what `kill PID` sends; background jobs of a shell ignore SIGINT
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()  # a no-op once it has exited
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert "interrupted: saved" in err or "run the same command to continue" in err, err
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] >= 1
    assert not list(out.glob("*.tmp"))  # no half-written checkpoint left behind


def test_validation_metrics(shard_dir: Path) -> None:
    train_set, val_set = train.load_dataset(list_shards(shard_dir), 1.0, 50.0, 0.0)
    assert len(train_set) == 0 and len(val_set) == 30 and val_set.legal is not None
    torch.manual_seed(0)
    metrics = train.evaluate(engine.AlphaZeroNet(1, 8), val_set)
    assert metrics["value_mse"] >= 0 and metrics["policy_loss"] > 0
    # masking to the legal moves can only help: wherever the raw argmax is the best move, so is the masked one
    assert 0 <= metrics["top1"] <= metrics["top1_legal"] <= 1


def test_init_starts_from_a_model_file(shard_dir: Path, tmp_path: Path) -> None:
    start = tmp_path / "start.pt"
    source = engine.AlphaZeroNet(1, 8)
    torch.manual_seed(5)
    for tensor in source.state_dict().values():
        if tensor.is_floating_point():
            tensor.normal_(0.0, 0.1).abs_()  # non-default weights and positive BatchNorm variances
    torch.save(source.state_dict(), start)
    # a learning rate of ~0 keeps the starting weights; the file's size wins over --blocks/--filters
    args = train.parse_args(train_args(shard_dir, tmp_path / "run", "--init", str(start), "--epochs", "1",
                                       "--batch-size", "10", "--lr", "1e-12", "--val-fraction", "0"))
    train.train(dataclasses.replace(args, blocks=2, filters=4))
    tuned = engine.AlphaZeroNet(1, 8)
    tuned.load_state_dict(torch.load(tmp_path / "run" / "model.pt", weights_only=True))
    for (name, before), after in zip(source.named_parameters(), tuned.parameters(), strict=True):
        torch.testing.assert_close(after, before, msg=name)

    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("no weights here\n")
    with pytest.raises(SystemExit, match="--init: .*notes.pt"):
        train.train(train.parse_args(train_args(shard_dir, tmp_path / "bad", "--init", str(not_a_model))))


def test_seresnet_trains_on_stockfish_wdl_and_loads(shard_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "se"
    # 16 filters: a convolutional policy head of 8 memorises 30 positions more slowly than a Linear one
    metrics = train.train(train.parse_args(train_args(shard_dir, out, "--family", "seresnet", "--se", "--filters",
                                                      "16", "--epochs", "25", "--batch-size", "10", "--lr", "1e-2",
                                                      "--val-fraction", "0")))
    history = metrics["history"]
    first = history[0]["train_wdl_loss"] + history[0]["train_policy_loss"]
    last = history[-1]["train_wdl_loss"] + history[-1]["train_policy_loss"]
    assert last < 0.7 * first, (first, last)
    evaluator = engine.load_model(out / "model.pt")
    assert (evaluator.info.family, evaluator.info.blocks, evaluator.info.filters, evaluator.has_wdl) == (
        "seresnet", 1, 16, True)
    data = load_shards(list_shards(shard_dir), KEYS)
    logits, wdl = evaluator.evaluate_wdl(expand_planes(data["bitboards"], data["black"]))
    assert np.mean(logits.argmax(axis=1) == data["policy_index"][:, 0]) > 0.5
    # the WDL head learned Stockfish's win/draw/loss: closer to it than the uniform guess
    target = data["wdl"] / data["wdl"].sum(axis=1, keepdims=True)
    assert np.abs(wdl - target).mean() < np.abs(1 / 3 - target).mean()
    metrics_val = train.evaluate(warmstart.initial_network(out / "model.pt"),
                                 train.load_dataset(list_shards(shard_dir), 1.0, 50.0, 0.0)[1])
    assert metrics_val["wdl_loss"] > 0 and 0 <= metrics_val["top1"] <= metrics_val["top1_legal"] <= 1


def test_seresnet_refuses_shards_without_wdl(shard_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    for path in list_shards(shard_dir):  # shards as datagen wrote them before it stored WDL
        with np.load(path) as data:
            np.savez_compressed(old / path.name, **{k: data[k] for k in data.files if k != "wdl"})
    with pytest.raises(SystemExit, match="no 'wdl' array"):
        train.train(train.parse_args(train_args(old, tmp_path / "run", "--family", "seresnet")))
    # the alphazero family's value target needs no WDL: such shards still train it
    metrics = train.train(train.parse_args(train_args(old, tmp_path / "az", "--epochs", "1", "--batch-size", "10",
                                                      "--val-fraction", "0")))
    assert metrics["history"][0]["train_value_mse"] > 0
    with pytest.raises(SystemExit):  # --se belongs to the seresnet family
        train.parse_args(train_args(old, tmp_path / "x", "--se"))


@pytest.mark.parametrize("se", [False, True])
def test_tower_from_keeps_the_alphazero_tower(se: bool, shard_dir: Path, tmp_path: Path) -> None:
    start = tmp_path / "az.pt"
    source = engine.AlphaZeroNet(2, 8)
    torch.manual_seed(7)
    for tensor in source.state_dict().values():
        if tensor.is_floating_point():
            tensor.normal_(0.0, 0.3).abs_()  # non-default weights, biases and positive BatchNorm variances
    torch.save(source.state_dict(), start)
    planes = torch.from_numpy(expand_planes(*load_shards(list_shards(shard_dir), ("bitboards", "black")).values()))
    started = warmstart.network_with_tower_of(start, se).eval()
    before, after = warmstart.tower_output(source.eval(), planes), warmstart.tower_output(started, planes)
    assert before.abs().max() > 1.0
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    assert (started.num_blocks, started.num_filters, bool(started.se_channels)) == (2, 8, se)

    flags = ["--family", "seresnet", "--tower-from", str(start), "--epochs", "1", "--batch-size", "10",
             "--val-fraction", "0"] + (["--se"] if se else [])
    train.train(train.parse_args(train_args(shard_dir, tmp_path / "run", *flags)))
    trained = engine.load_model(tmp_path / "run" / "model.pt")
    assert (trained.info.family, trained.info.blocks, trained.info.filters) == ("seresnet", 2, 8)
    with pytest.raises(SystemExit, match="expected alphazero"):
        train.train(train.parse_args(train_args(shard_dir, tmp_path / "bad", "--family", "seresnet",
                                                "--tower-from", str(tmp_path / "run" / "model.pt"))))
    with pytest.raises(SystemExit):  # the tower goes into a seresnet, never an alphazero network
        train.parse_args(train_args(shard_dir, tmp_path / "x", "--tower-from", str(start)))


def capped_random_seresnet(path: Path, seed: int, se_channels: int) -> torch.nn.Module:
    """A 2x8 capped seresnet with random non-default weights, saved to ``path``; returned in eval mode."""
    from engine.nets.seresnet import SEResNet
    from engine.quant.calibration import builtin_calibration_planes
    from engine.training.int8_ready import with_activation_caps

    torch.manual_seed(seed)
    source = SEResNet(2, 8, se_channels=se_channels)
    for name, tensor in source.state_dict().items():
        if tensor.is_floating_point() and "running_var" not in name:
            tensor.normal_(0.0, 0.3)
    source = with_activation_caps(source.eval(), builtin_calibration_planes()[:64], 0.999).eval()
    torch.save(source.state_dict(), path)
    return source


def test_init_with_se_adds_a_neutral_squeeze_excitation(shard_dir: Path, tmp_path: Path) -> None:
    start = tmp_path / "noSE.pt"
    source = capped_random_seresnet(start, seed=11, se_channels=0)
    planes = torch.from_numpy(expand_planes(*load_shards(list_shards(shard_dir), ("bitboards", "black")).values()))
    grown = warmstart.initial_network(start, add_se=True).eval()
    assert grown.se_channels > 0 and grown.capped
    with torch.no_grad():
        (logits_before, wdl_before), (logits_after, wdl_after) = source(planes), grown(planes)
    assert logits_before.abs().max() > 0.1
    torch.testing.assert_close(logits_after, logits_before, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(wdl_after, wdl_before, rtol=1e-5, atol=1e-5)

    run = tmp_path / "run"
    flags = ["--init", str(start), "--se", "--int8-grid", "--epochs", "1", "--batch-size", "10", "--val-fraction", "0"]
    train.train(train.parse_args(train_args(shard_dir, run, *flags)))
    trained = engine.load_model(run / "model.pt")
    assert (trained.info.family, trained.info.blocks, trained.info.filters) == ("seresnet", 2, 8)
    assert "blocks.0.se.fc2.weight" in torch.load(run / "model.pt", weights_only=True)
    alphazero = tmp_path / "az.pt"
    torch.save(engine.AlphaZeroNet(2, 8).state_dict(), alphazero)
    with pytest.raises(SystemExit, match="only seresnet"):
        warmstart.initial_network(alphazero, add_se=True)


def test_grow_blocks_starts_as_the_same_function_and_trains(shard_dir: Path, tmp_path: Path) -> None:
    start = tmp_path / "two.pt"
    source = capped_random_seresnet(start, seed=13, se_channels=4)
    planes = torch.from_numpy(expand_planes(*load_shards(list_shards(shard_dir), ("bitboards", "black")).values()))
    grown = warmstart.initial_network(start, blocks=4).eval()
    assert (grown.num_blocks, grown.se_channels, grown.capped) == (4, 4, True)
    assert float(grown.blocks[3].cap3.high) == float(source.blocks[1].cap3.high)
    with torch.no_grad():
        (logits_before, wdl_before), (logits_after, wdl_after) = source(planes), grown(planes)
    assert logits_before.abs().max() > 0.1
    torch.testing.assert_close(logits_after, logits_before, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(wdl_after, wdl_before, rtol=1e-5, atol=1e-5)

    run = tmp_path / "run"
    flags = ["--init", str(start), "--grow-blocks", "4", "--activation-caps", "0.999", "--int8-grid", "--epochs", "1",
             "--batch-size", "10", "--val-fraction", "0"]
    train.train(train.parse_args(train_args(shard_dir, run, *flags)))
    trained = engine.load_model(run / "model.pt")
    assert (trained.info.family, trained.info.blocks, trained.info.filters) == ("seresnet", 4, 8)
    state = torch.load(run / "model.pt", weights_only=True)
    assert state["blocks.3.conv2.weight"].abs().max() > 1e-4  # the new blocks learn (the convolution started at 0)
    with pytest.raises(SystemExit, match="already has 2 blocks"):
        warmstart.initial_network(start, blocks=2)
    with pytest.raises(SystemExit):
        train.parse_args(train_args(shard_dir, tmp_path / "x", "--grow-blocks", "8"))
