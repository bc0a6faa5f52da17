"""The garbage collector's full walks leave the objects torch and ONNX Runtime bring out.

A loaded network leaves a quarter of a million long-lived Python objects (torch's and ONNX Runtime's
modules, functions and types). Python's full collection walks every tracked object; at random moments
during play that is a pause of ~0.1 s, enough to lose on time at 1+0.01 (it did, in a soak). The engine
freezes them (``gc.freeze``) once a network is in play, and once the faster form loaded in the background
is. The engine here is ``azengine``'s UCI loop in a child process that, after ``quit``, writes how many
objects the collector still walks and how many are frozen.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from uci_client import RawEngine

import engine
from engine.loader import fast_start_backends

#: Seconds for the background load of the faster form on a busy 2-core machine.
LOAD_S = 120.0

CHILD = """
import argparse, gc, sys
from uci import cli

cli.run(argparse.Namespace(log_level="WARNING"))
with open(sys.argv[1], "w") as report:
    report.write(f"{len(gc.get_objects())} {gc.get_freeze_count()}\\n")
import os
os._exit(0)
"""


def play_and_count(tmp_path: Path, backend: str) -> tuple[int, int]:
    """Load the bundled network as ``backend``, search (with ``auto``: until the faster form loaded in the
    background plays, where there is one), quit: (objects the collector walks, frozen objects)."""
    report = tmp_path / "gc.txt"
    wait_for_switch = backend == "auto"
    with RawEngine([sys.executable, "-c", CHILD, str(report)]) as player:
        player.send("uci")
        player.wait_for("uciok", LOAD_S)
        player.send(f"setoption name Backend value {backend}")
        player.isready(LOAD_S)
        player.send("position startpos", "go nodes 100")
        _, _, before = player.wait_for("bestmove", LOAD_S)
        if wait_for_switch:
            for _ in range(int(LOAD_S / 0.5)):
                player.send("go nodes 20")
                _, _, before = player.wait_for("bestmove", LOAD_S)
                if any("switched to" in line for line in before):
                    break
            else:
                raise AssertionError("the faster form never came")
        player.send("quit")
        player.proc.wait(timeout=30)
    walked, frozen = (int(word) for word in report.read_text().split())
    return walked, frozen


def test_objects_of_the_loaded_network_are_out_of_the_collectors_walk(tmp_path: Path) -> None:
    walked, frozen = play_and_count(tmp_path, "fp32")
    assert frozen > 50_000, (walked, frozen)  # the loaded libraries' objects
    assert walked < frozen // 10, (walked, frozen)


def test_the_faster_form_loaded_in_the_background_is_frozen_too(tmp_path: Path) -> None:
    if fast_start_backends(engine.default_model_path()) is None:
        pytest.skip("Backend=auto loads nothing in the background on this CPU or installation")
    walked, frozen = play_and_count(tmp_path, "auto")
    assert walked < frozen // 10, (walked, frozen)
