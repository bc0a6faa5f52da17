"""Importing torch on a background thread without stalling the other threads of the process.

``import torch`` loads torch's C++ library (``libtorch_cpu.so``, a few hundred MB) with ``dlopen``, and
CPython holds the GIL through that call and the library's static constructors: the UCI loop and the
search thread stand still meanwhile. :func:`import_torch` first loads that library through a ctypes
call of ``dlopen`` itself, during which ctypes releases the GIL; ``import torch`` then finds it loaded.
The rest of the import is Python code, which shares the GIL as usual. Where the library is not found
(another platform, another packaging of torch) it is a plain ``import torch``.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

#: torch's libraries loaded ahead of ``import torch``, in the order and with the flags torch uses.
PRELOADED_LIBRARIES = (("libtorch_global_deps.so", os.RTLD_NOW | os.RTLD_GLOBAL),
                       ("libtorch_cpu.so", os.RTLD_NOW | os.RTLD_LOCAL))


def torch_library_dir() -> Path | None:
    """Where the installed torch keeps its shared libraries (None: torch is not installed)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "lib"


def preload_torch_libraries() -> bool:
    """Load torch's C++ libraries with the GIL released; True if they are loaded (or torch is imported already)."""
    if "torch" in sys.modules:
        return True
    folder = torch_library_dir()
    if not sys.platform.startswith("linux") or getattr(sys, "frozen", False) or folder is None:
        return False  # a PyInstaller build lays libraries out its own way: a plain import there
    libc = ctypes.CDLL(None)  # a CDLL function call releases the GIL for its duration
    dlopen = libc.dlopen
    dlopen.restype, dlopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]
    for name, mode in PRELOADED_LIBRARIES:
        path = folder / name
        if not path.is_file() or not dlopen(os.fsencode(path), mode):
            log.debug("not preloaded: %s", path)
            return False
    return True


def import_torch() -> None:
    """``import torch``, its C++ library loaded first with the GIL released (:func:`preload_torch_libraries`).

    Raises what ``import torch`` raises (``ModuleNotFoundError`` where torch is not installed).
    """
    preload_torch_libraries()
    importlib.import_module("torch")
