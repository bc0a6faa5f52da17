"""``azengine match``: play games between two UCI engines and measure the Elo difference.

Each engine is ``azengine`` in some configuration or any UCI engine, driven through python-chess's
:class:`chess.engine.SimpleEngine`. Every opening is played twice with colours swapped (a game pair);
the runner keeps the clocks, adjudicates, writes PGN and reports the statistics of
:mod:`uci.match.statistics` in cutechess-cli's format. ``--quantization FP32 INT8`` runs the
fp32-against-int8 studies (equal nodes, then equal time) in one command; ``--variant chess960`` plays
Chess960.

Modules, one job each: ``engines`` (specs, starting and stopping engines), ``openings``, ``limits``
(clock, nodes, move time), ``adjudication``, ``game`` (one game), ``results`` (the tally),
``runner`` (workers, SPRT stop, PGN file), ``statistics`` (Elo, LOS, SPRT), ``command`` (the command line).
Nothing here is imported by the UCI engine itself.
"""

from .adjudication import Adjudication
from .engines import EngineSpec, Player, parse_engine_spec, resolve_command, start_engine
from .errors import MatchError
from .game import GameRecord, play_game
from .limits import GameLimits, TimeControl, parse_tc
from .openings import BUNDLED_OPENINGS, ECO_PGN, Opening, chess960_openings, load_openings, opening_schedule
from .results import MatchResult
from .runner import MatchConfig, run_match

__all__ = [
    "BUNDLED_OPENINGS", "ECO_PGN", "Adjudication", "EngineSpec", "GameLimits", "GameRecord", "MatchConfig",
    "MatchError", "MatchResult", "Opening", "Player", "TimeControl", "chess960_openings", "load_openings",
    "opening_schedule", "parse_engine_spec", "parse_tc", "play_game", "resolve_command", "run_match",
    "start_engine",
]
