"""Start-up time of the UCI engine per backend: from starting the process to ``uciok`` and to ``readyok``.

A GUI starts the engine, sends ``uci`` and waits for ``uciok``, sets its options, sends ``isready`` and
waits for ``readyok`` (the network loads then). This benchmark does the same, with fresh processes, several
times per backend, and prints the median and the range of both times. ``--command`` times another engine
command, e.g. the PyInstaller build ``dist/azengine/azengine``.

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

from benchmarks.common import machine_load

BACKENDS = "auto,onnx-int8,onnx-fp32,static-int8"


def engine_command() -> list[str]:
    """The ``azengine`` on PATH, else this interpreter running the package."""
    found = shutil.which("azengine")
    return [found] if found else [sys.executable, "-m", "uci"]


def time_start(command: list[str], backend: str) -> tuple[float, float]:
    """Seconds from starting ``command`` to ``uciok`` and to ``readyok`` (``Backend`` set between the two)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, bufsize=1)
    assert proc.stdin is not None and proc.stdout is not None

    def wait_for(word: str) -> float:
        for line in proc.stdout:
            if line.strip() == word:
                return time.perf_counter() - started
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
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return uciok, readyok


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, start the engine repeatedly and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5, help="starts per backend (default 5)")
    parser.add_argument("--backends", default=BACKENDS, help=f"comma-separated Backend values (default {BACKENDS})")
    parser.add_argument("--command", help="engine command line (default: azengine on PATH)")
    parser.add_argument("--quick", action="store_true", help="a run of seconds: 2 starts, Backend auto")
    args = parser.parse_args(argv)
    if args.quick:
        args.starts, args.backends = 2, "auto"
    command = shlex.split(args.command) if args.command else engine_command()
    print("# azengine start-up benchmark: seconds from process start to uciok and to readyok")
    print(f"# {shlex.join(command)}, {args.starts} starts per backend, starts interleaved")
    print(f"# {machine_load()}")
    backends = args.backends.split(",")
    times: dict[str, list[tuple[float, float]]] = {b: [] for b in backends}
    for _ in range(args.starts):
        for backend in backends:
            times[backend].append(time_start(command, backend))
    print(f"{'backend':12s} {'uciok median (min-max)':>24s} {'readyok median (min-max)':>26s}")
    for backend in backends:
        uciok = [t[0] for t in times[backend]]
        readyok = [t[1] for t in times[backend]]
        print(f"{backend:12s} {statistics.median(uciok):8.2f} s ({min(uciok):.2f}-{max(uciok):.2f}) "
              f"{statistics.median(readyok):10.2f} s ({min(readyok):.2f}-{max(readyok):.2f})")
    print(f"# {machine_load()}")


if __name__ == "__main__":
    main()
