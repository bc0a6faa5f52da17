"""The 3-4-piece Syzygy tables for the tests: python-chess's sdist ships them under ``data/syzygy/regular``.

``syzygy_dir()`` returns a directory holding them: ``$AZENGINE_SYZYGY_DIR`` when set, else
``~/.cache/azengine-syzygy``, filled on first use from the sdist of the installed python-chess version
(``pip download --no-binary :all:``; PyPI is reachable in CI). It raises :class:`TablesUnavailable`
with the reason when that fails, and the tests that need the tables skip with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import chess

CACHE_DIR = Path("~/.cache/azengine-syzygy").expanduser()
SDIST_TABLES = "data/syzygy/regular/"
DOWNLOAD_TIMEOUT_S = 300


class TablesUnavailable(RuntimeError):
    """The Syzygy tables could not be found or fetched."""


def _has_tables(directory: Path) -> bool:
    return directory.is_dir() and any(directory.glob("*.rtbw"))


def _fetch_into(target: Path) -> None:
    """Download python-chess's sdist and unpack its Syzygy tables into ``target`` (all or nothing)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="azengine-syzygy-", dir=target.parent) as work:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
                   f"chess=={chess.__version__}", "-d", work]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TablesUnavailable(f"pip download of the chess {chess.__version__} sdist failed: {exc}") from None
        archives = sorted(Path(work).glob("chess-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise TablesUnavailable(f"pip download of the chess {chess.__version__} sdist failed: "
                                    f"{done.stderr.strip()[-300:]}")
        unpacked = Path(work) / "tables"
        unpacked.mkdir()
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                _, _, inside = member.name.partition("/")
                if member.isfile() and inside.startswith(SDIST_TABLES) and "/" not in inside[len(SDIST_TABLES):]:
                    source = archive.extractfile(member)
                    assert source is not None
                    with source, open(unpacked / Path(inside).name, "wb") as out:
                        shutil.copyfileobj(source, out)
        if not _has_tables(unpacked):
            raise TablesUnavailable(f"the chess {chess.__version__} sdist holds no {SDIST_TABLES}*.rtbw")
        if not _has_tables(target):  # another test process may have filled it meanwhile
            shutil.rmtree(target, ignore_errors=True)
            os.replace(unpacked, target)


def syzygy_dir() -> Path:
    """A directory with the 3-4-piece Syzygy tables (see the module docstring)."""
    override = os.environ.get("AZENGINE_SYZYGY_DIR")
    if override:
        if not _has_tables(Path(override)):
            raise TablesUnavailable(f"AZENGINE_SYZYGY_DIR={override} holds no .rtbw tables")
        return Path(override)
    if not _has_tables(CACHE_DIR):
        _fetch_into(CACHE_DIR)
    return CACHE_DIR
