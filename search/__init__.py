"""Monte Carlo tree search: the Cython tree (``_mcts``), its driver and the time manager.

The search never imports torch: it calls an :class:`engine.interface.Evaluator`.
"""

from .mcts import Searcher, position_key
from .types import Limits, MoveStats, PvLine, Score, SearchInfo, SearchParams, SearchResult, wdl_from_q

__all__ = [
    "Limits",
    "MoveStats",
    "PvLine",
    "Score",
    "SearchInfo",
    "SearchParams",
    "SearchResult",
    "Searcher",
    "position_key",
    "wdl_from_q",
]
