"""One game of a match: the engines' moves, the clocks, faults (time, illegal move, crash) and the PGN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import chess
import chess.engine
import chess.pgn

from .adjudication import Adjudication, Adjudicator
from .engines import EngineHung, Player
from .limits import GameLimits
from .openings import Opening


@dataclass
class GameRecord:
    """The result of one game and its PGN."""

    pair: int
    index: int  # 0: the first engine has white; 1: colours swapped
    white: str
    black: str
    result: str  # "1-0", "0-1", "1/2-1/2"
    termination: str  # PGN Termination tag
    detail: str  # e.g. "White mates", "Black loses on time"
    plies: int  # book moves included
    book_plies: int
    opening: str
    fault: tuple[str, str] | None = None  # (engine name, "time" | "illegal" | "crash")
    pgn: chess.pgn.Game | None = None

    @property
    def round(self) -> str:
        """``pair.game`` (``3.1``, ``3.2``): the Round tag."""
        return f"{self.pair}.{self.index + 1}"

    def points(self, name: str) -> float:
        """Points of the engine called ``name`` in this game."""
        white_points = {"1-0": 1.0, "0-1": 0.0}.get(self.result, 0.5)
        return white_points if name == self.white else 1.0 - white_points

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (without the moves)."""
        return {"round": self.round, "white": self.white, "black": self.black, "result": self.result,
                "termination": self.termination, "detail": self.detail, "plies": self.plies,
                "book_plies": self.book_plies, "opening": self.opening,
                "fault": list(self.fault) if self.fault else None}


_DRAW_TEXT = {
    chess.Termination.STALEMATE: "Draw by stalemate",
    chess.Termination.INSUFFICIENT_MATERIAL: "Draw by insufficient mating material",
    chess.Termination.SEVENTYFIVE_MOVES: "Draw by 75 moves rule",
    chess.Termination.FIVEFOLD_REPETITION: "Draw by 5-fold repetition",
    chess.Termination.FIFTY_MOVES: "Draw by fifty moves rule",
    chess.Termination.THREEFOLD_REPETITION: "Draw by 3-fold repetition",
}


def _colour(color: chess.Color) -> str:
    return "White" if color == chess.WHITE else "Black"


def _score_comment(info: chess.engine.InfoDict, elapsed: float) -> str:
    score = info.get("score")
    text = "?"
    if score is not None:
        relative = score.relative
        mate = relative.mate()
        text = (f"{'+' if mate > 0 else '-'}M{abs(mate)}" if mate is not None
                else f"{relative.score() / 100:+.2f}")
    depth = info.get("depth")
    return f"{text}/{depth if depth is not None else 0} {elapsed:.3f}s"


@dataclass
class _GameEnd:
    result: str
    termination: str
    detail: str
    fault: tuple[str, str] | None = None


def _new_pgn(board: chess.Board, opening: Opening, limits: GameLimits, headers: dict[str, str],
             white: str, black: str) -> chess.pgn.Game:
    """The PGN of a game before its first move: tags, and the start position when it is not the usual one."""
    game = chess.pgn.Game()
    game.headers.update(headers)
    game.headers["White"], game.headers["Black"] = white, black
    if board.chess960:
        game.setup(board)  # Variant "Chess960"; the FEN also for the standard array (position 518)
        game.headers["SetUp"], game.headers["FEN"] = "1", board.fen()
    elif opening.fen != chess.STARTING_FEN:
        game.setup(board)
    for key, value in opening.headers:
        game.headers[key] = value
    game.headers["TimeControl"] = limits.pgn_time_control()
    if limits.nodes:
        game.headers["Nodes"] = str(limits.nodes)
    if limits.movetime_ms:
        game.headers["MoveTime"] = f"{limits.movetime_ms}ms"
    return game


def play_game(white: Player, black: Player, opening: Opening, limits: GameLimits, adjudication: Adjudication,
              game_token: object, headers: dict[str, str]) -> GameRecord:
    """Play one game from ``opening``; faults of an engine (time, illegal move, crash) lose it the game."""
    board = opening.start_board()
    game = _new_pgn(board, opening, limits, headers, white.spec.name, black.spec.name)
    node: chess.pgn.GameNode = game
    for move in opening.moves:
        board.push(move)
        node = node.add_variation(move, comment="book")
    book_plies = len(board.move_stack)

    players = {chess.WHITE: white, chess.BLACK: black}
    clocks = {chess.WHITE: limits.tc.base, chess.BLACK: limits.tc.base} if limits.tc else {}
    adjudicator = Adjudicator(adjudication)
    end: _GameEnd | None = None
    while end is None:
        outcome = board.outcome(claim_draw=True)
        if outcome is not None:
            if outcome.winner is not None:
                end = _GameEnd(outcome.result(), "normal", f"{_colour(outcome.winner)} mates")
            else:
                end = _GameEnd("1/2-1/2", "normal", _DRAW_TEXT.get(outcome.termination, "Draw"))
            break
        if len(board.move_stack) >= adjudication.max_plies:
            end = _GameEnd("1/2-1/2", "adjudication", f"Draw by maximum game length ({adjudication.max_plies} plies)")
            break
        color = board.turn
        player = players[color]
        loss = "0-1" if color == chess.WHITE else "1-0"
        name = _colour(color)
        hard = limits.hard_timeout_s(clocks.get(color))
        try:
            result, elapsed = player.play(board, limits.engine_limit(clocks), hard, game_token)
        except EngineHung:
            end = _GameEnd(loss, "time forfeit", f"{name} loses on time (no move after {hard:.1f} s)",
                           (player.spec.name, "time"))
            break
        except chess.engine.EngineTerminatedError:
            end = _GameEnd(loss, "abandoned", f"{name} disconnects (engine crashed)", (player.spec.name, "crash"))
            break
        except chess.engine.EngineError as exc:
            end = _GameEnd(loss, "rules infraction", f"{name} makes an illegal move ({exc})",
                           (player.spec.name, "illegal"))
            break
        move = result.move
        if move is None or move not in board.legal_moves:
            end = _GameEnd(loss, "rules infraction", f"{name} makes an illegal move: {move or '(none)'}",
                           (player.spec.name, "illegal"))
            break
        if limits.tc:
            clocks[color] -= elapsed
            if clocks[color] < -limits.margin_s():
                end = _GameEnd(loss, "time forfeit", f"{name} loses on time", (player.spec.name, "time"))
                break
            clocks[color] += limits.tc.inc
        elif limits.movetime_ms and elapsed > limits.movetime_ms / 1000 + limits.margin_s():
            end = _GameEnd(loss, "time forfeit", f"{name} loses on time ({elapsed:.3f} s for a "
                           f"{limits.movetime_ms} ms move)", (player.spec.name, "time"))
            break
        board.push(move)
        node = node.add_variation(move, comment=_score_comment(result.info, elapsed))
        verdict = adjudicator.after_move(board, color, result.info.get("score"))
        if verdict == "draw":
            end = _GameEnd("1/2-1/2", "adjudication", "Draw by adjudication")
        elif verdict == "resign":
            end = _GameEnd(loss, "adjudication", f"{name} resigns (adjudication)")

    game.headers["Result"] = end.result
    game.headers["Termination"] = end.termination
    game.headers["PlyCount"] = str(len(board.move_stack))
    if node is game:
        game.comment = end.detail
    else:
        node.comment = f"{node.comment}, {end.detail}" if node.comment else end.detail
    return GameRecord(pair=0, index=0, white=white.spec.name, black=black.spec.name, result=end.result,
                      termination=end.termination, detail=end.detail, plies=len(board.move_stack),
                      book_plies=book_plies, opening=opening.label(), fault=end.fault, pgn=game)

