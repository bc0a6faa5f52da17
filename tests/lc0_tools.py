"""Where the lc0 things the tests use live: Maia networks, lc0's source archive, the built lc0 binary.

``shared/`` is found beside the repository or above it (``../shared`` from /work/main, ``../../shared``
from a worktree), or at ``$AZ_SHARED``; tools in ``$AZ_TOOLS`` (default ``~/.cache/azengine-tools``),
where ``shared/tools/build-tools.sh lc0`` puts them.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD_HINT = "build it with ../shared/tools/build-tools.sh lc0"


def shared_dir() -> Path | None:
    """The shared folder with ``nets/`` and ``tools/``, or None."""
    if os.environ.get("AZ_SHARED"):
        return Path(os.environ["AZ_SHARED"])
    for parent in REPO.parents:
        if (parent / "shared" / "nets").is_dir():
            return parent / "shared"
    return None


def maia_path(name: str = "maia-1900") -> Path | None:
    """A Maia network's path, or None when shared/nets does not hold it."""
    shared = shared_dir()
    path = shared / "nets" / f"{name}.pb.gz" if shared else None
    return path if path is not None and path.is_file() else None


def tools_dir() -> Path:
    """Where build-tools.sh puts its builds."""
    return Path(os.environ.get("AZ_TOOLS", Path.home() / ".cache" / "azengine-tools"))


def lc0_binary() -> Path | None:
    """The built lc0, or None."""
    path = tools_dir() / "bin" / "lc0"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def lc0_source(relative: str) -> str | None:
    """A file of lc0's sources (``src/neural/encoder.cc``, ...): from the unpacked build folder, else from
    the archive in shared/tools; None when neither is here."""
    unpacked = tools_dir() / "src" / "lc0" / relative
    if unpacked.is_file():
        return unpacked.read_text()
    shared = shared_dir()
    archives = sorted((shared / "tools").glob("lc0-*.tar.gz")) if shared else []
    if not archives:
        return None
    with tarfile.open(archives[0]) as archive:
        for member in archive.getmembers():
            if member.name.lstrip("./") == relative or member.name.endswith("/" + relative):
                handle = archive.extractfile(member)
                return handle.read().decode() if handle else None
    return None
