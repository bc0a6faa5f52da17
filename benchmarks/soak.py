"""Soak test: games through cutechess-cli against Stockfish, and resident memory over ``go infinite``.

    python benchmarks/soak.py --games-fast 1000 --games-ponder 200 --infinite-s 3600   # the full soak
    python benchmarks/soak.py --quick                                                  # a few seconds

Part 1 plays ``--games-fast`` games at 1+0.01 and ``--games-ponder`` games at 10+0.1 with pondering
against Stockfish (``UCI_LimitStrength``) through cutechess-cli and counts, from cutechess-cli's own
PGN and log: time losses, illegal moves, disconnects/crashes and stalls. Part 2 starts ``azengine``, sends
``go infinite`` from a middlegame and samples its resident memory (VmRSS of the process and its
children) with the ``nodes`` and ``hashfull`` of the latest ``info`` line, every ``--sample-s`` seconds.

``--engine`` is the command that starts the engine (default: ``azengine`` on PATH); ``--option
Name=Value`` sets UCI options for both parts (e.g. ``--option RamLimitMb=300``). Not part of the test
suite except ``--quick``; cutechess-cli comes from ``../shared/tools/build-tools.sh cutechess``.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

STOCKFISH = "/usr/games/stockfish"
MIDDLEGAME_FEN = "r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R2QKB1R w KQ - 0 9"

#: cutechess-cli's result comments that mean the engine under test misbehaved.
_TIME_LOSS = re.compile(r"loses on time|time forfeit", re.I)
_ILLEGAL = re.compile(r"illegal move", re.I)
_PLAYERS = re.compile(r"^Finished game \d+ \((?P<white>.+?) vs (?P<black>.+?)\):")
_DISCONNECT = re.compile(r"disconnects|connection stalls|stalls|crash|terminated|unresponsive", re.I)


@dataclass
class MatchReport:
    """What one cutechess-cli run showed: games played and each kind of failure (from its output)."""

    label: str
    games: int = 0
    time_losses: int = 0
    illegal_moves: int = 0
    stalls: int = 0
    score: str = ""
    failures: list[str] = field(default_factory=list)
    opponent_failures: list[str] = field(default_factory=list)


@dataclass
class RssSample:
    """One sample of ``go infinite``: seconds since go, resident MiB, nodes and hashfull of the last info."""

    seconds: float
    rss_mb: float
    nodes: int
    hashfull: int


def engine_words(command: str | None) -> list[str]:
    """The engine command as argv: ``--engine`` split like a shell would, or ``azengine`` on PATH."""
    if command:
        return shlex.split(command)
    exe = shutil.which("azengine")
    return [exe] if exe else [sys.executable, "-m", "uci.cli"]


def _failing_side(line: str, comment: str) -> str | None:
    """The name of the engine a ``Finished game N (white vs black): ... {White ...}`` comment blames."""
    players = _PLAYERS.search(line)
    if players is None:
        return None
    if comment.startswith("White"):
        return players["white"]
    if comment.startswith("Black"):
        return players["black"]
    return None


def parse_runner_output(output: str, label: str, ours: str | None = None) -> MatchReport:
    """Count finished games and failures in the ``Finished game`` lines of cutechess-cli or fastchess.

    With ``ours`` (an engine name), only that engine's failures count; the opponent's go to
    ``opponent_failures``.
    """
    report = MatchReport(label)
    for line in output.splitlines():
        if line.startswith("Finished game"):
            report.games += 1
            comment = line[line.rfind("{") + 1:line.rfind("}")] if "{" in line else ""
            failing = _failing_side(line, comment)
            if ours is not None and failing is not None and failing != ours:
                if _TIME_LOSS.search(comment) or _ILLEGAL.search(comment) or _DISCONNECT.search(comment):
                    report.opponent_failures.append(line)
                continue
            if _TIME_LOSS.search(comment):
                report.time_losses += 1
                report.failures.append(line)
            elif _ILLEGAL.search(comment):
                report.illegal_moves += 1
                report.failures.append(line)
            elif _DISCONNECT.search(comment):
                report.stalls += 1
                report.failures.append(line)
        elif line.startswith("Score of"):
            report.score = line.strip()
    return report


def cutechess_match(cutechess: str, engine: list[str], options: dict[str, str], games: int, tc: str,
                    ponder: bool, stockfish_elo: int, label: str, timeout_s: float,
                    pgn: Path | None = None, concurrency: int = 1) -> MatchReport:
    """Play ``games`` games of the engine against Stockfish at ``tc`` through cutechess-cli.

    ``concurrency`` games run at once (each with its own engine processes).
    """
    option_args = [f"option.{name}={value}" for name, value in options.items()]
    cmd = [cutechess, "-engine", "name=azengine", f"cmd={engine[0]}", *[f"arg={a}" for a in engine[1:]],
           "proto=uci", *option_args,
           "-engine", "name=stockfish", f"cmd={STOCKFISH}", "proto=uci", "option.Threads=1", "option.Hash=16",
           "option.UCI_LimitStrength=true", f"option.UCI_Elo={stockfish_elo}",
           "-each", f"tc={tc}", "timemargin=0", *(["ponder"] if ponder else []),
           "-games", str(games), "-repeat", "-recover", "-concurrency", str(concurrency),
           "-draw", "movenumber=40", "movecount=8", "score=10", "-resign", "movecount=4", "score=800",
           *(["-pgnout", str(pgn)] if pgn else [])]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        report = parse_runner_output(output, label, "azengine")
        report.stalls += 1
        report.failures.append(f"cutechess-cli did not finish within {timeout_s:.0f} s")
        return report
    report = parse_runner_output(output, label, "azengine")
    if report.games < games:
        report.failures.append(f"only {report.games} of {games} games finished")
    return report


def _rss_mb(pid: int) -> float:
    """Resident MiB of ``pid`` and its children (the console script may run Python as a child)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024.0


def infinite_rss(engine: list[str], options: dict[str, str], seconds: float, sample_s: float,
                 fen: str = MIDDLEGAME_FEN) -> tuple[list[RssSample], float]:
    """Run ``go infinite`` for ``seconds`` and sample memory; returns the samples and stop->bestmove secs."""
    proc = subprocess.Popen(engine, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, bufsize=1)
    assert proc.stdin is not None and proc.stdout is not None
    latest = {"nodes": 0, "hashfull": 0}
    bestmove = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            words = line.split()
            if words[:1] == ["info"]:
                for key in ("nodes", "hashfull"):
                    if key in words:
                        latest[key] = int(words[words.index(key) + 1])
            elif words[:1] == ["bestmove"]:
                bestmove.set()
            elif words[:1] == ["readyok"]:
                latest["ready"] = 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def send(line: str) -> None:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()

    send("uci")
    for name, value in options.items():
        send(f"setoption name {name} value {value}")
    send("isready")
    deadline = time.monotonic() + 120
    while "ready" not in latest and time.monotonic() < deadline:
        time.sleep(0.05)
    send(f"position fen {fen}")
    send("go infinite")
    start = time.monotonic()
    samples = [RssSample(0.0, _rss_mb(proc.pid), 0, 0)]
    while time.monotonic() - start < seconds:
        time.sleep(min(sample_s, max(0.0, seconds - (time.monotonic() - start))))
        samples.append(RssSample(time.monotonic() - start, _rss_mb(proc.pid), latest["nodes"], latest["hashfull"]))
    stop_at = time.monotonic()
    send("stop")
    bestmove.wait(timeout=30)
    stop_s = time.monotonic() - stop_at if bestmove.is_set() else float("inf")
    send("quit")
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    return samples, stop_s


def print_match(report: MatchReport) -> None:
    """One block per match: games, failures by kind and cutechess-cli's score line."""
    print(f"{report.label}: {report.games} games, {report.time_losses} time losses, "
          f"{report.illegal_moves} illegal moves, {report.stalls} stalls/disconnects")
    if report.score:
        print(f"  {report.score}")
    for failure in report.failures:
        print(f"  FAIL {failure}")
    for failure in report.opponent_failures:
        print(f"  opponent: {failure}")


def print_rss(samples: list[RssSample], stop_s: float) -> None:
    """The RSS curve and the bytes of memory growth per node after the first sample with nodes."""
    print(f"{'seconds':>8} {'RSS MiB':>8} {'nodes':>10} {'hashfull':>8}")
    for s in samples:
        print(f"{s.seconds:8.1f} {s.rss_mb:8.1f} {s.nodes:10d} {s.hashfull:8d}")
    first = next((s for s in samples if s.nodes > 0), None)
    last = samples[-1]
    if first is not None and last.nodes > first.nodes:
        per_node = (last.rss_mb - first.rss_mb) * 1024 * 1024 / (last.nodes - first.nodes)
        print(f"RSS growth per node from {first.seconds:.0f} s to {last.seconds:.0f} s: {per_node:.0f} bytes")
    print(f"peak RSS {max(s.rss_mb for s in samples):.1f} MiB; bestmove {stop_s:.2f} s after stop")


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the matches and the ``go infinite`` run, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: 2 fast games, 5 s of infinite")
    parser.add_argument("--engine", help="engine command (default: azengine on PATH)")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="UCI option")
    parser.add_argument("--games-fast", type=int, default=20, help="games at 1+0.01")
    parser.add_argument("--games-ponder", type=int, default=4, help="games at 10+0.1 with pondering")
    parser.add_argument("--concurrency", type=int, default=1, help="games played at once in each match")
    parser.add_argument("--stockfish-elo", type=int, default=1500, help="Stockfish's UCI_Elo")
    parser.add_argument("--infinite-s", type=float, default=60.0, help="seconds of go infinite (0: skip)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--pgn-dir", type=Path, help="write each match's games (with clocks) here")
    args = parser.parse_args(argv)
    if args.quick:
        args.games_fast, args.games_ponder, args.infinite_s, args.sample_s = 2, 0, 5.0, 1.0
    engine = engine_words(args.engine)
    options = dict(o.split("=", 1) for o in args.option)
    failed = False
    cutechess = shutil.which("cutechess-cli")
    if args.games_fast or args.games_ponder:
        if cutechess is None:
            print("cutechess-cli not on PATH (bash ../shared/tools/build-tools.sh cutechess): matches skipped")
        else:
            runs = [(args.games_fast, "1+0.01", False), (args.games_ponder, "10+0.1", True)]
            for games, tc, ponder in runs:
                if not games:
                    continue
                base, inc = (float(x) for x in tc.split("+"))
                timeout = 120 + games * 2.5 * (base + 100 * inc) * 2
                label = f"{tc}{' ponder' if ponder else ''}"
                pgn = args.pgn_dir / f"soak_{tc}{'_ponder' if ponder else ''}.pgn" if args.pgn_dir else None
                report = cutechess_match(cutechess, engine, options, games, tc, ponder, args.stockfish_elo,
                                         label, timeout, pgn, args.concurrency)
                print_match(report)
                failed |= bool(report.failures)
    if args.infinite_s > 0:
        samples, stop_s = infinite_rss(engine, options, args.infinite_s, args.sample_s)
        print(f"go infinite for {args.infinite_s:.0f} s, options {options or 'default'}:")
        print_rss(samples, stop_s)
        failed |= stop_s > 5
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
