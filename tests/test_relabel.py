"""Labelling the positions of played games: each distinct position once, held-out ones left out,
results per side to move, interrupted runs continued."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import chess
import chess.pgn
import chess.polyglot
import numpy as np
import pytest

from engine.bundled import HELDOUT_FILE, data_path
from engine.encoding import move_to_index
from engine.positions import read_fens
from engine.training.datagen import GenConfig
from engine.training.relabel import chunk_path, excluded_keys, relabel
from engine.training.shards import list_shards, load_shards

try:
    from engine.training.openings import find_stockfish

    STOCKFISH = find_stockfish()
except FileNotFoundError:  # pragma: no cover - stockfish is a Debian package on the dev machines
    pytest.skip("stockfish is not installed", allow_module_level=True)

CFG = GenConfig(nodes=200, shard_size=4)


def write_games(path: Path) -> list[tuple[list[chess.Board], str]]:
    """Three games (two sharing an opening, one from a held-out position) as PGN; their boards and results."""
    heldout = read_fens(data_path(HELDOUT_FILE), limit=1)[0]
    specs = [(chess.Board(), ["e4", "e5", "Nf3", "Nc6", "Bb5"], "1-0"),
             (chess.Board(), ["e4", "e5", "d4", "exd4"], "0-1"),
             (heldout, [], "1/2-1/2")]
    played = []
    with open(path, "w", encoding="utf-8") as handle:
        for start, sans, result in specs:
            game = chess.pgn.Game.from_board(start)
            board, boards, node = start.copy(), [start.copy()], game
            moves = sans or [board.san(m) for m in list(board.legal_moves)[:1]]
            for san in moves:
                move = board.parse_san(san)
                node = node.add_variation(move)
                board.push(move)
                boards.append(board.copy())
            game.headers["Result"] = result
            print(game, file=handle, end="\n\n")
            played.append((boards, result))
    return played


def test_each_distinct_position_once_with_its_result(tmp_path: Path) -> None:
    played = write_games(tmp_path / "games.pgn")
    relabel([tmp_path / "games.pgn"], tmp_path / "out", workers=1, cfg=CFG)
    data = load_shards(list_shards(tmp_path / "out"), keys=("fen", "result", "game", "policy_index"))
    fens = [f.decode() for f in data["fen"]]

    excluded = excluded_keys()  # the built-in sets hold some of these opening positions too
    expected: dict[str, int] = {}
    for boards, result in played:
        white = {"1-0": 1, "0-1": -1}.get(result, 0)
        for board in boards:
            if chess.polyglot.zobrist_hash(board) not in excluded:
                expected.setdefault(board.fen(), white if board.turn == chess.WHITE else -white)
    assert sorted(fens) == sorted(expected)  # positions the games share once
    heldout_game = played[2][0]
    assert heldout_game[0].fen() not in fens and heldout_game[1].fen() in fens
    assert [int(r) for r in data["result"]] == [expected[f] for f in fens]
    first, second = (data["game"][fens.index(b.fen())] for b in (played[0][0][-1], played[1][0][-1]))
    assert first != second and data["game"][fens.index(played[0][0][0].fen())] == first
    for fen, index in zip(fens, data["policy_index"][:, 0], strict=True):
        board = chess.Board(fen)
        assert index in {move_to_index(board, m) for m in board.legal_moves}


def test_rerun_labels_only_missing_shards(tmp_path: Path) -> None:
    write_games(tmp_path / "games.pgn")
    out, cfg = tmp_path / "out", GenConfig(nodes=200, shard_size=2)
    chunks = relabel([tmp_path], out, workers=2, cfg=cfg)
    assert chunks >= 3 and all(chunk_path(out, n).exists() for n in range(chunks))
    kept = {n: chunk_path(out, n).stat().st_mtime_ns for n in range(chunks) if n != 1}
    before = np.load(chunk_path(out, 1))["fen"]
    chunk_path(out, 1).unlink()
    assert relabel([tmp_path], out, workers=2, cfg=cfg) == chunks
    assert {n: chunk_path(out, n).stat().st_mtime_ns for n in kept} == kept
    assert list(np.load(chunk_path(out, 1))["fen"]) == list(before)


def test_missing_pgn_is_one_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "engine.training.relabel", "--pgn", str(tmp_path / "nope.pgn"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "nope.pgn" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
