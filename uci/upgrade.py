"""The faster form of the network, loaded on a thread of its own while the engine already plays.

With ``Backend=auto`` on a CPU where the bundled network runs fastest as a torch form (static-int8 with
AMX), the engine answers ``readyok`` as soon as the torch-free ONNX form is loaded and starts a
:class:`NetworkUpgrade` for the torch form (:func:`engine.loader.fast_start_backends`). The UCI loop takes
its result between two searches (:meth:`NetworkUpgrade.result` once :meth:`NetworkUpgrade.done`, or
after :meth:`NetworkUpgrade.wait` where the same form is asked for explicitly); the thread itself never
touches the searcher. torch is imported with its C++ library loaded outside the GIL
(:func:`engine.torch_import.import_torch`), so that the UCI loop keeps answering meanwhile. Reading the
TorchScript archive (``torch.jit.load``) is one C++ call that holds the GIL throughout, the longer the more
threads torch has on a busy machine (it prepacks the weights): torch's thread count is set first, and it
waits until no search runs (``idle``), so that no search and its clock stand still; a command that comes
meanwhile is answered after it.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import chess
import numpy as np

import engine
from engine.interface import Evaluator

log = logging.getLogger(__name__)

#: Seconds between two looks at ``cancelled`` while the load waits for no search to run.
IDLE_POLL_S = 0.05
#: Network calls made on the new evaluator before it plays: TorchScript optimizes its graph on the first calls.
WARM_UP_CALLS = 2


@contextmanager
def collections_paused() -> Iterator[None]:
    """No garbage collection in the block, then its survivors frozen out of later full collections.

    Importing torch and loading a network make a few 10^5 long-lived objects; collections triggered
    meanwhile walk them all, holding the GIL for tens of ms while a search runs on another thread.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


class NetworkUpgrade:
    """Loads ``path`` as ``backend`` with ``threads`` network threads on a daemon thread, once."""

    def __init__(self, path: str, backend: str, threads: int, batch_size: int,
                 idle: threading.Event | None = None) -> None:
        self.path = path
        self.backend = backend
        self.threads = threads
        self._batch_size = max(1, batch_size)
        self._idle = idle  # set while no search runs or waits
        self._evaluator: Evaluator | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self.cancelled = False  # set by the UCI loop when the options ask for another network
        self._waited_for = False  # someone waits for the result: do not wait for idle any more
        self._thread = threading.Thread(target=self._load, name="network-upgrade", daemon=True)
        self._start_lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Start loading, once (later calls do nothing)."""
        with self._start_lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def _load(self) -> None:
        try:
            from engine.loader import load_model
            from engine.torch_import import import_torch

            with collections_paused():
                import_torch()
            from engine.backends.torch_backend import set_torch_threads

            # before the archive is read: it prepacks the int8 weights on torch's threads, holding the GIL
            set_torch_threads(self.threads)
            while self._idle is not None and not self._idle.wait(IDLE_POLL_S) and not self._waited_for:
                if self.cancelled:
                    return
            if self.cancelled:
                return
            with collections_paused():
                evaluator = load_model(self.path, self.backend, self.threads)
                planes = engine.encode_batch([chess.Board()] * self._batch_size)
                for _ in range(WARM_UP_CALLS):
                    evaluator.evaluate(np.ascontiguousarray(planes))
            self._evaluator = evaluator
        except Exception as exc:  # torch missing or broken, a bad file: the engine keeps its ONNX network
            log.debug("background load of %s as %s failed", self.path, self.backend, exc_info=True)
            self._error = exc
        finally:
            self._done.set()

    def serves(self, path: str, backend: str) -> bool:
        """Whether this load is of ``path`` as ``backend`` (then waiting for it beats loading a second time)."""
        return not self.cancelled and path == self.path and backend == self.backend

    def done(self) -> bool:
        """Whether the load has ended, well or not."""
        return self._done.is_set()

    def wait(self) -> None:
        """Block until the load has ended (it then goes ahead also while a search runs); at once if never started."""
        self._waited_for = True
        with self._start_lock:
            if not self._started:
                return
        self._done.wait()

    def result(self) -> Evaluator | None:
        """The loaded evaluator once the load has ended (None: it failed or was cancelled; see :meth:`failure`)."""
        return self._evaluator if self._done.is_set() else None

    def failure(self) -> str:
        """Why the load failed, for an ``info string`` (a ``ModuleNotFoundError`` names the missing module)."""
        exc = self._error
        if exc is None:
            return "cancelled"
        if isinstance(exc, ModuleNotFoundError):
            return f"{exc.name or 'torch'} cannot be imported here"
        return f"{exc}"


def load_playing(path: str, backend: str, threads: int, batch_size: int, running: NetworkUpgrade | None,
                 idle: threading.Event | None = None) -> tuple[Evaluator, NetworkUpgrade | None]:
    """The network to play ``path`` as ``backend`` with now, and the background load to start after (None: none).

    An explicit choice ends the ``running`` background load: when it asks for the very form that load
    brings, the load is waited for and used (no second load); otherwise its result is dropped, after it
    ended where the new network needs torch too (torch's settings are process-wide). ``Backend=auto`` on
    the bundled network, where its form on this CPU needs torch, plays the torch-free form first
    (:func:`engine.loader.fast_start_backends`); ``idle`` is set while no search runs. Raises what
    :func:`engine.loader.load_for_play` raises.
    """
    from engine.backends.onnx_backend import ONNX_KINDS
    from engine.loader import fast_start_backends, load_for_play, load_model

    if running is not None:
        if running.serves(path, backend):
            running.wait()
            if (evaluator := running.result()) is not None:
                set_threads = getattr(evaluator, "set_threads", None)
                if running.threads != threads and set_threads is not None:
                    set_threads(threads)
                return evaluator, None
        running.cancelled = True
        if backend not in ONNX_KINDS:
            running.wait()
    forms = fast_start_backends(path, backend)
    if forms is None:
        return load_for_play(path, backend=backend, threads=threads), None
    now, later = forms
    evaluator = load_model(path, now, threads)
    evaluator.info.notes.append(f"{later}, this CPU's faster form, is loading in the background; "
                                f"the engine switches to it between two searches")
    return evaluator, NetworkUpgrade(path, later, threads, batch_size, idle)
