"""``azengine match``: the command line (argparse), the match or studies it asks for, and the report.

Prints cutechess-cli's summary lines on stdout, progress on stderr; exit code 0 when the games were played,
2 on bad input, 1 when an engine failed mid-match, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import sys
from pathlib import Path
from typing import Any

from engine.files import atomic_write

from .adjudication import ADJUDICATION_WHEN_ON, Adjudication
from .engines import EngineSpec, parse_engine_spec
from .errors import MatchError
from .limits import GameLimits, parse_tc
from .openings import CHESS960_SOURCE, ECO_PGN, VARIANTS, chess960_openings, default_openings_path, load_openings
from .runner import MatchConfig, run_match
from .statistics import parse_sprt

QUANT_DEFAULT_NODES = 400
QUANT_DEFAULT_TC = "10+0.1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``azengine match``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Play games between two UCI engines (azengine configurations or any UCI engine) and report the Elo "
        "difference.\nEach opening is played twice with colours swapped.\n\nexample:\n"
        "  azengine match --engine \"name=fp32 cmd=azengine option.Backend=fp32\" \\\n"
        "    --engine \"name=int8 cmd=azengine option.Backend=static-int8\" \\\n"
        "    --each option.Threads=1 --tc 10+0.1 --games 200 --pgn fp32_vs_int8.pgn\n\n"
        "  azengine match --quantization model.pt model_static_quantized.pt --games 200")
    g = parser.add_argument_group("engines")
    g.add_argument("--engine", action="append", nargs="+", metavar="FIELD",
                   help="an engine (give it twice): name=NAME cmd=COMMAND [arg=ARG ...] [dir=DIR] [option.NAME=VALUE "
                   "...], as one quoted string or as separate words")
    g.add_argument("--each", action="append", nargs="+", default=[], metavar="FIELD",
                   help="fields applied to both engines, e.g. option.Threads=1 (an engine's own options win)")
    g.add_argument("--quantization", nargs=2, metavar=("FP32_MODEL", "INT8_MODEL"),
                   help="shortcut: azengine with WeightsFile=FP32_MODEL Backend=fp32 against WeightsFile=INT8_MODEL "
                   "(a TorchScript int8 .pt or an ONNX .onnx file), "
                   f"at equal nodes (--nodes, default {QUANT_DEFAULT_NODES}) and then at equal time (--tc, default "
                   f"{QUANT_DEFAULT_TC}), --games games each")
    g = parser.add_argument_group("limits")
    g.add_argument("--tc", help="time control base+inc in seconds, e.g. 10+0.1 (clocks kept by the runner)")
    g.add_argument("--nodes", type=int, help="nodes per move (equal nodes)")
    g.add_argument("--movetime", type=int, metavar="MS", help="milliseconds per move")
    g.add_argument("--timemargin", type=int, metavar="MS",
                   help="how far past its clock (or the move time) a move may come before it loses on time "
                   "(default 0 with --tc, 1000 with --movetime)")
    g.add_argument("--move-timeout", type=float, default=GameLimits.move_timeout_s, metavar="S",
                   help="with --nodes only: an engine silent this long loses on time and is restarted "
                   f"(default {GameLimits.move_timeout_s:g})")
    g = parser.add_argument_group("games and openings")
    g.add_argument("--games", type=int, default=100, help="number of games, rounded up to pairs (default 100)")
    g.add_argument("--concurrency", type=int, default=1, help="games played at once, each with its own engine "
                   "processes (default 1)")
    g.add_argument("--openings", help=f"EPD/FEN or PGN file of openings (default {ECO_PGN} when present, else the "
                   "small set shipped with azengine)")
    g.add_argument("--plies", type=int, default=16, help="book plies taken from each PGN opening line (default 16)")
    g.add_argument("--opening-order", choices=("random", "sequential"), default="random",
                   help="order of the openings (default random)")
    g.add_argument("--variant", choices=VARIANTS, default="standard",
                   help="chess960: castling by Chess960 rules; every game pair starts from a Chess960 start "
                   "position drawn with --seed, or from the --openings file (X-FEN or Shredder-FEN); both "
                   "engines need the UCI_Chess960 option (default standard)")
    g.add_argument("--seed", type=int, help="seed of the random opening order (default: a random one, reported)")
    g = parser.add_argument_group("adjudication (off unless one of its options is given)")
    on = ADJUDICATION_WHEN_ON
    g.add_argument("--draw-movenumber", type=int,
                   help=f"draw: not before this full move (default {on.draw_movenumber})")
    g.add_argument("--draw-movecount", type=int, help="draw: after this many consecutive moves of each side with "
                   f"|score| <= --draw-score (default {on.draw_movecount})")
    g.add_argument("--draw-score", type=int, help=f"draw: score bound in centipawns (default {on.draw_score})")
    g.add_argument("--resign-movecount", type=int, help="resign: after this many consecutive moves of one side "
                   f"with score <= -resign-score (default {on.resign_movecount})")
    g.add_argument("--resign-score", type=int, help=f"resign: score bound in centipawns (default {on.resign_score})")
    g.add_argument("--max-plies", type=int, default=Adjudication.max_plies,
                   help=f"a game this long is a draw (default {Adjudication.max_plies})")
    g = parser.add_argument_group("stopping and output")
    g.add_argument("--sprt", metavar="FIELDS", help="stop early by SPRT: \"elo0=0 elo1=10 alpha=0.05 beta=0.05\" "
                   "[model=trinomial|pentanomial]; --games is then the maximum")
    g.add_argument("--pgn", help="append every game to this PGN file")
    g.add_argument("--json", dest="json_out", help="write settings, results and the game list as JSON")
    g.add_argument("--event", default="azengine match", help="PGN Event tag (default 'azengine match')")
    g.add_argument("--show-engine-stderr", action="store_true", help="let the engines' stderr through")


def _check_output(path_text: str | None, option: str) -> Path | None:
    if not path_text:
        return None
    path = Path(path_text)
    if path.is_dir():
        raise MatchError(f"{option} {path}: is a folder, not a file name")
    if not path.parent.is_dir():
        raise MatchError(f"{option} {path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise MatchError(f"{option} {path}: folder {path.parent} is not writable")
    return path


def _positive(value: int | float | None, option: str, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise MatchError(f"{option} must be at least {minimum}, not {value}")


def _adjudication(args: argparse.Namespace) -> Adjudication:
    for option in ("draw_movenumber", "draw_movecount", "draw_score", "resign_movecount", "resign_score"):
        _positive(getattr(args, option), "--" + option.replace("_", "-"), 0)
    _positive(args.max_plies, "--max-plies")
    draw_on = any(v is not None for v in (args.draw_movenumber, args.draw_movecount, args.draw_score))
    resign_on = args.resign_movecount is not None or args.resign_score is not None

    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    on = ADJUDICATION_WHEN_ON
    return Adjudication(
        draw_movenumber=pick(args.draw_movenumber, on.draw_movenumber),
        draw_movecount=pick(args.draw_movecount, on.draw_movecount) if draw_on else 0,
        draw_score=pick(args.draw_score, on.draw_score),
        resign_movecount=pick(args.resign_movecount, on.resign_movecount) if resign_on else 0,
        resign_score=pick(args.resign_score, on.resign_score), max_plies=args.max_plies)


def _limits(args: argparse.Namespace, tc_text: str | None, nodes: int | None, movetime: int | None) -> GameLimits:
    tc = parse_tc(tc_text) if tc_text is not None else None
    _positive(nodes, "--nodes")
    _positive(movetime, "--movetime")
    _positive(args.timemargin, "--timemargin", 0)
    if args.move_timeout <= 0:
        raise MatchError(f"--move-timeout must be positive, not {args.move_timeout}")
    if tc is None and not nodes and not movetime:
        raise MatchError("give a limit: --tc base+inc, --nodes N or --movetime MS")
    return GameLimits(tc=tc, nodes=nodes, movetime_ms=movetime, timemargin_ms=args.timemargin,
                  move_timeout_s=args.move_timeout)


def _quantization_specs(args: argparse.Namespace, each: list[str]) -> tuple[EngineSpec, EngineSpec]:
    fp32_model, int8_model = (Path(p) for p in args.quantization)
    for path in (fp32_model, int8_model):
        if not path.is_file():
            raise MatchError(f"--quantization: model file not found: {path}")
    defaults = [] if any("option.threads=" in t.lower() for t in each) else ["option.Threads=1"]
    specs = []
    for name, model, backend in (("fp32", fp32_model, "fp32"), ("int8", int8_model, None)):
        spec = parse_engine_spec([f"name={name}", "cmd=azengine"], defaults + each)
        spec.options["WeightsFile"] = str(model.resolve())
        if backend:
            spec.options["Backend"] = backend
        specs.append(spec)
    return specs[0], specs[1]


def build_configs(args: argparse.Namespace) -> list[tuple[str, MatchConfig]]:
    """The match (or, with ``--quantization``, the two studies) that ``args`` ask for; MatchError if bad."""
    each = [token for tokens in args.each for token in tokens]
    if args.quantization:
        if args.engine:
            raise MatchError("--quantization chooses the engines itself; leave out --engine")
        if args.movetime is not None:
            raise MatchError("--quantization runs equal nodes and equal time; leave out --movetime")
        engines = _quantization_specs(args, each)
        studies = [(f"equal nodes ({args.nodes or QUANT_DEFAULT_NODES} nodes per move)",
                    _limits(args, None, args.nodes or QUANT_DEFAULT_NODES, None)),
                   (f"equal time (tc {args.tc or QUANT_DEFAULT_TC})",
                    _limits(args, args.tc or QUANT_DEFAULT_TC, None, None))]
    else:
        count = len(args.engine or [])
        if count != 2:
            raise MatchError(f"--engine must be given exactly twice (got {count}), e.g. "
                             "--engine \"name=a cmd=azengine\" --engine \"name=b cmd=stockfish\"")
        first = parse_engine_spec(args.engine[0], each, 1)
        second = parse_engine_spec(args.engine[1], each, 2)
        if first.name == second.name:
            first.name, second.name = f"{first.name}-1", f"{second.name}-2"
        engines = (first, second)
        studies = [("", _limits(args, args.tc, args.nodes, args.movetime))]
    _positive(args.games, "--games")
    _positive(args.concurrency, "--concurrency")
    _positive(args.plies, "--plies", 0)
    adjudication = _adjudication(args)
    sprt = None
    if args.sprt:
        try:
            sprt = parse_sprt(args.sprt)
        except ValueError as exc:
            raise MatchError(f"bad --sprt: {exc}") from None
    pgn_path = _check_output(args.pgn, "--pgn")
    _check_output(args.json_out, "--json")
    if args.variant == "chess960" and not args.openings:
        source: Path | str = CHESS960_SOURCE
        openings = chess960_openings()
    else:
        source = Path(args.openings) if args.openings else default_openings_path()
        openings = load_openings(source, args.plies, args.variant)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    configs = []
    for label, limits in studies:
        event = f"{args.event}: {label}" if label else args.event
        configs.append((label, MatchConfig(
            engines=engines, openings=openings, limits=limits, games=args.games, concurrency=args.concurrency,
            adjudication=adjudication, opening_order=args.opening_order, seed=seed, sprt=sprt, pgn_path=pgn_path,
            event=event, show_engine_stderr=args.show_engine_stderr, openings_source=str(source), label=label)))
    return configs


def _config_dict(config: MatchConfig) -> dict[str, Any]:
    limits, adj = config.limits, config.adjudication
    return {
        "engines": [{"name": s.name, "command": s.command, "options": s.options, "dir": s.cwd}
                    for s in config.engines],
        "limits": {"tc": str(limits.tc) if limits.tc else None, "nodes": limits.nodes,
                   "movetime_ms": limits.movetime_ms,
                   "timemargin_s": limits.margin_s() if limits.tc or limits.movetime_ms else None},
        "games": config.games, "concurrency": config.concurrency, "openings": config.openings_source,
        "opening_count": len(config.openings), "opening_order": config.opening_order, "seed": config.seed,
        "variant": config.variant,
        "adjudication": dataclasses.asdict(adj), "pgn": str(config.pgn_path) if config.pgn_path else None,
    }


def run(args: argparse.Namespace) -> int:
    """Run the command: 0 when the games were played, 2 on bad input, 1 when an engine failed mid-match."""
    logging.getLogger("chess.engine").setLevel(logging.ERROR)  # not every "info string" line is a warning
    configs = build_configs(args)  # MatchError: one line on stderr, exit 2 (uci.cli)
    studies: list[dict[str, Any]] = []
    code = 0
    try:
        for label, config in configs:
            result = run_match(config)
            if label:
                sys.stdout.write(f"== {label} ==\n")
            sys.stdout.write("\n".join(result.summary_lines()) + "\n")
            if result.stopped:
                sys.stdout.write(f"Match stopped early: {result.stopped}\n")
            sys.stdout.write("Finished match\n")
            sys.stdout.flush()
            studies.append({"study": label or None, "settings": _config_dict(config), "result": result.to_dict()})
            if result.stopped == "interrupted":
                code = 130
                break
            if result.stopped and result.stopped.startswith("error"):
                code = 1
    except MatchError as exc:
        sys.stderr.write(f"azengine match: error: {exc}\n")
        code = 2
    if args.json_out and studies:
        data = studies[0] if len(studies) == 1 and not studies[0]["study"] else {"studies": studies}
        try:
            atomic_write(args.json_out, json.dumps(data, indent=2) + "\n")
        except OSError as exc:
            sys.stderr.write(f"azengine match: error: {args.json_out}: cannot write ({exc.strerror or exc})\n")
            return code or 1
    return code
