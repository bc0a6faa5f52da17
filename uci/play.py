"""``azengine play``: a human plays the engine in the terminal (moves in SAN or UCI)."""

from __future__ import annotations

import argparse
import sys

import chess

import engine
from engine.cpu import default_threads
from engine.errors import CommandError
from search import Limits, Searcher, SearchParams


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``azengine play``."""
    parser.add_argument("--model", help="model file (default: the bundled network)")
    parser.add_argument("--backend", default="auto",
                        help="auto (the bundled network: onnx-int8; another file: what it is), fp32, "
                             "dynamic-int8, static-int8, onnx-fp32 or onnx-int8")
    parser.add_argument("--rollouts", "--nodes", dest="nodes", type=int, default=800,
                        help="playouts per engine move (default 800)")
    parser.add_argument("--movetime", type=int, help="milliseconds per engine move (instead of --rollouts)")
    parser.add_argument("--color", choices=("white", "black"), default="white", help="your colour")
    parser.add_argument("--fen", help="start from this position")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="network threads (default: the Threads option's default for this CPU)")


def _read_move(board: chess.Board, text: str) -> chess.Move | None:
    for parse in (board.parse_san, board.parse_uci):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def run(args: argparse.Namespace) -> int:
    """Play one game on stdin/stdout; :class:`CommandError` when the model or the FEN is bad."""
    out = sys.stdout
    try:
        evaluator = engine.load_for_play(args.model or engine.default_model_path(), args.backend, args.threads)
    except (engine.ModelFileError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    try:
        board = chess.Board(args.fen) if args.fen else chess.Board()
    except ValueError as exc:
        raise CommandError(f"bad FEN: {exc}") from None
    searcher = Searcher(evaluator, SearchParams())
    human = chess.WHITE if args.color == "white" else chess.BLACK
    out.write(f"You play {args.color}. Enter moves in SAN (Nf3) or UCI (g1f3); 'quit' ends the game.\n")
    while not board.is_game_over(claim_draw=True):
        out.write("\n" + board.unicode(borders=True, invert_color=True, orientation=human) + "\n")
        if board.turn == human:
            out.write("Your move: ")
            out.flush()
            line = sys.stdin.readline()
            if not line or line.strip().lower() in ("quit", "exit", "resign"):
                out.write("Game ended.\n")
                return 0
            move = _read_move(board, line.strip())
            if move is None:
                out.write(f"Not a legal move here: {line.strip()!r}\n")
                continue
        else:
            limits = Limits(movetime=args.movetime) if args.movetime else Limits(nodes=args.nodes)
            result = searcher.search(board, limits)
            move = result.best_move
            line = result.info.lines[0]
            out.write(f"Engine plays {board.san(move)} ({line.score.uci()}, {result.info.nodes} nodes, "
                      f"{result.info.nps} nodes/s)\n")
        board.push(move)
    out.write("\n" + board.unicode(borders=True, invert_color=True, orientation=human) + "\n")
    out.write(f"Game over: {board.result(claim_draw=True)} ({board.outcome(claim_draw=True).termination.name})\n")
    searcher.close()
    return 0
