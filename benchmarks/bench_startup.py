"""Start-up time of the UCI engine per backend: from starting the process to ``uciok`` and to ``readyok``.

A GUI starts the engine, sends ``uci`` and waits for ``uciok``, sets its options, sends ``isready`` and
waits for ``readyok`` (the network loads then). This benchmark does the same, with fresh processes, several
times per backend, and prints the median and the range of both times. ``--command`` times another engine
command, e.g. the PyInstaller build ``dist/azengine/azengine``.

Where ``readyok`` comes before the network's final form is loaded (``Backend=auto`` on a CPU whose best
form of the bundled network needs torch: it loads in the background), the benchmark goes on sending
``isready`` every ``--poll-ms`` until the engine says it switched, and prints the slowest ``isready`` round
trip during that load and the time from start to the switch.

    python -m benchmarks.bench_startup [--starts 5 --backends auto,onnx-int8,onnx-fp32,static-int8]
    python -m benchmarks.bench_startup --command dist/azengine/azengine --backends auto
    python -m benchmarks.bench_startup --quick      # seconds: 2 starts, Backend auto
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from benchmarks.common import machine_load

BACKENDS = "auto,onnx-int8,onnx-fp32,static-int8"
#: The engine's words before ``readyok`` when a faster form loads in the background, and once it ended.
BACKGROUND_LOAD = "is loading in the background"
SWITCHED = ("info string switched to ", "could not be loaded")
#: How long to wait for the background load to end before giving up on that start.
SWITCH_TIMEOUT_S = 120.0


@dataclass
class Start:
    """One start: seconds to ``uciok`` and ``readyok``; with a background load, the slowest ``isready`` round
    trip during it and the seconds from start to the switch (None without one)."""

    uciok: float
    readyok: float
    isready_max: float | None = None
    switch: float | None = None


def engine_command() -> list[str]:
    """The ``azengine`` on PATH, else this interpreter running the package."""
    found = shutil.which("azengine")
    return [found] if found else [sys.executable, "-m", "uci"]


def time_start(command: list[str], backend: str, poll_s: float = 0.05) -> Start:
    """Time one start of ``command`` (``Backend`` set between ``uciok`` and ``isready``), and a background load."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, bufsize=1)
    assert proc.stdin is not None and proc.stdout is not None

    seen: list[str] = []

    def wait_for(word: str) -> float:
        for line in proc.stdout:
            if line.strip() == word:
                return time.perf_counter() - started
            seen.append(line.strip())
        raise RuntimeError(f"{shlex.join(command)} exited before {word}")

    try:
        proc.stdin.write("uci\n")
        proc.stdin.flush()
        uciok = wait_for("uciok")
        if backend != "auto":
            proc.stdin.write(f"setoption name Backend value {backend}\n")
        proc.stdin.write("isready\n")
        proc.stdin.flush()
        readyok = wait_for("readyok")
        start = Start(uciok, readyok)
        if any(BACKGROUND_LOAD in line for line in seen):
            start.isready_max, start.switch = 0.0, None
            while start.switch is None and time.perf_counter() - started < SWITCH_TIMEOUT_S:
                time.sleep(poll_s)
                seen.clear()
                sent = time.perf_counter()
                proc.stdin.write("isready\n")
                proc.stdin.flush()
                answered = wait_for("readyok")
                start.isready_max = max(start.isready_max, answered - (sent - started))
                if any(line.startswith(SWITCHED[0]) or SWITCHED[1] in line for line in seen):
                    start.switch = answered
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return start


def median_range(values: list[float]) -> str:
    """``median s (min-max)``."""
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, start the engine repeatedly and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5, help="starts per backend (default 5)")
    parser.add_argument("--backends", default=BACKENDS, help=f"comma-separated Backend values (default {BACKENDS})")
    parser.add_argument("--command", help="engine command line (default: azengine on PATH)")
    parser.add_argument("--poll-ms", type=float, default=50.0,
                        help="pause between isready during a background load (default 50)")
    parser.add_argument("--quick", action="store_true", help="a run of seconds: 2 starts, Backend auto")
    args = parser.parse_args(argv)
    if args.quick:
        args.starts, args.backends = 2, "auto"
    command = shlex.split(args.command) if args.command else engine_command()
    print("# azengine start-up benchmark: seconds from process start to uciok and to readyok")
    print(f"# {shlex.join(command)}, {args.starts} starts per backend, starts interleaved")
    print(f"# {machine_load()}")
    backends = args.backends.split(",")
    times: dict[str, list[Start]] = {b: [] for b in backends}
    for _ in range(args.starts):
        for backend in backends:
            times[backend].append(time_start(command, backend, args.poll_ms / 1000))
    print(f"{'backend':12s} {'uciok median (min-max)':>24s} {'readyok median (min-max)':>26s}")
    for backend in backends:
        print(f"{backend:12s} {median_range([t.uciok for t in times[backend]]):>24s} "
              f"{median_range([t.readyok for t in times[backend]]):>26s}")
    for backend in backends:
        loads = [t for t in times[backend] if t.isready_max is not None]
        if loads:
            switched = [t.switch for t in loads if t.switch is not None]
            print(f"# {backend}: a faster form loaded in the background in {len(loads)} of {len(times[backend])} "
                  f"starts; slowest isready round trip during the load {max(t.isready_max for t in loads):.3f} s "
                  f"(median of the starts' slowest {statistics.median(t.isready_max for t in loads):.3f} s); "
                  f"switched at {median_range(switched) if switched else 'never'} after start")
    print(f"# {machine_load()}")


if __name__ == "__main__":
    main()
