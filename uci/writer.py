"""The one place that writes protocol lines to stdout."""

from __future__ import annotations

import threading
from typing import TextIO


class UciWriter:
    """Writes whole lines to a stream and flushes each; safe to call from several threads."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, line: str) -> None:
        """Write ``line`` and a newline, then flush (GUIs read line by line)."""
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError):  # the GUI went away or stdout closed: nothing to tell
                pass
