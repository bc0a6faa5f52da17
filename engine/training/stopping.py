"""Stopping long jobs cleanly: ``kill PID`` (SIGTERM) unwinds a run the way Ctrl-C does.

Data generation then keeps the games it finished, and training saves its checkpoint, so the same
command continues where the run stopped. A shell starts background jobs with SIGINT ignored, which
leaves SIGTERM as the signal that reaches them.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """From now on, SIGTERM raises KeyboardInterrupt in this process's main thread."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs (e.g. a checkpoint being written), then raise
    KeyboardInterrupt after it if one came; the handlers in place before are restored."""
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    before = {signum: signal.getsignal(signum) for signum in held}
    for signum in held:
        if before[signum] not in (signal.SIG_IGN, None):
            signal.signal(signum, lambda number, frame: pending.append(number))
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    if pending:
        raise KeyboardInterrupt
