"""Writing files so that a failure leaves nothing half-written: a temporary file beside, then a rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside ``path``; renamed onto ``path`` when the block ends.

    If the block raises (or is interrupted), the temporary file is removed and ``path`` is untouched.
    The file gets the usual permissions (``0666`` less the umask), not ``mkstemp``'s ``0600``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically."""
    with atomic_output(path) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def atomic_save(path: str | Path, save: Callable[[BinaryIO], None]) -> None:
    """Call ``save(handle)`` (e.g. ``lambda f: torch.save(obj, f)``) and rename its output onto ``path``."""
    with atomic_output(path) as handle:
        save(handle)
