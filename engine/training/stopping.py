"""Stopping long jobs cleanly: ``kill PID`` (SIGTERM) unwinds a run the way Ctrl-C does.

Data generation then keeps the games it finished, and training saves its checkpoint, so the same
command continues where the run stopped. A shell starts background jobs with SIGINT ignored, which
leaves SIGTERM as the signal that reaches them.
"""

from __future__ import annotations

import signal
from types import FrameType


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """From now on, SIGTERM raises KeyboardInterrupt in this process's main thread."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
