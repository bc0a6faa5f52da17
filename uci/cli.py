"""The ``azengine`` command: the UCI engine by default, and its subcommands.

Each subcommand's module is imported only when it runs, so that starting the UCI loop imports
neither the quantization nor the training code.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from collections.abc import Callable

from engine.errors import CommandError

from . import __version__

# subcommand -> (module, help); each module has ``add_arguments(parser)`` and ``run(args) -> int``
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "uci": ("uci.cli", "run the UCI engine (the default without a subcommand)"),
    "quantize": ("quantize.command", "write an int8 (dynamic or static) version of an fp32 model, with an "
                 "accuracy report"),
    "bench": ("quantize.bench", "measure speed, size and accuracy of fp32 and int8 backends side by side"),
    "play": ("uci.play", "play a game against the engine in the terminal"),
    "match": ("uci.match.command", "play games between two UCI engines and measure the Elo difference"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``azengine uci``."""
    parser.add_argument("--log-level", default="WARNING", help="stderr log level (default WARNING)")


def run(args: argparse.Namespace) -> int:
    """Run the UCI loop on stdin/stdout; undecodable input bytes are replaced, never fatal."""
    from .loop import run as run_loop

    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline=None)
    run_loop(stdin, sys.stdout)
    sys.stdout.flush()
    return 0


def _module_hooks(name: str) -> tuple[Callable, Callable]:
    """A subcommand's ``add_arguments`` and ``run``; :class:`CommandError` where this build lacks what it needs
    (the PyInstaller GUI engine has no torch, so no ``quantize`` or ``bench``)."""
    from importlib import import_module

    try:
        module = import_module(SUBCOMMANDS[name][0])
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in ("torch", "quantize", "onnx", "onnxscript"):
            raise
        raise CommandError(f"this build cannot run '{name}' ({top} is not in it); the full build "
                           f"(AZENGINE_FULL=1 pyinstaller engine.spec) or 'pip install azengine' can") from None
    return module.add_arguments, module.run


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The argument parser; only the chosen subcommand's module is imported."""
    parser = argparse.ArgumentParser(prog="azengine", description="AlphaZero-style UCI chess engine "
                                     "(fp32 or int8 network, Cython MCTS). Without a subcommand: the UCI engine.")
    parser.add_argument("--version", action="version", version=f"azengine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    chosen = next((a for a in argv if not a.startswith("-")), "uci")
    for name, (_, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            add, _ = _module_hooks(name)
            add(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``azengine`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    # torch's C++ warnings (e.g. that quantized tensors are deprecated, once per int8 load) bypass Python's
    # warnings module and would reach a GUI's engine log; read by torch when it loads, so set it first.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    try:
        parser = build_parser(argv)
    except CommandError as exc:
        sys.stderr.write(f"azengine: error: {exc}\n")
        return 2
    args = parser.parse_args(argv)
    command = args.command or "uci"
    if command == "uci" and not hasattr(args, "log_level"):
        args.log_level = "WARNING"
    logging.basicConfig(level=getattr(logging, str(getattr(args, "log_level", "WARNING")).upper(), logging.WARNING),
                        stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    _, run_command = _module_hooks(command)
    try:
        code = int(run_command(args) or 0)
    except CommandError as exc:
        sys.stderr.write(f"azengine {command}: error: {exc}\n")
        return 2
    if command == "uci":
        sys.stdout.flush()
        os._exit(code)  # do not wait for a network call still running on the evaluator thread
    return code


if __name__ == "__main__":
    sys.exit(main())
