"""Move quality of the search at a fixed node count, judged by Stockfish: a fast proxy for tuning.

    python -m benchmarks.experiments.search_quality --nodes 300 --positions 400 \\
        --config "default:" --config "pt1.4:PolicyTemperature=1.4" --config "c2.5:CPuct=2.5"

Each configuration (UCI option values on top of the defaults) searches the same real positions from
the shipped held-out set (fresh tree each) and plays its best move. Stockfish then judges every move
the configurations chose: the expected score (from its WDL, side to move's view) after Stockfish's own
best move minus the expected score after the chosen move, each from ``--sf-nodes`` nodes of analysis
restricted to that move. Reported per configuration: agreement with Stockfish's best move, mean
expected-score loss, and the share of moves that lose more than 0.1 (blunders); then each
configuration against the first one, paired position by position, with the standard error of the
mean difference. Lower loss is better. Matches (``azengine match``) remain the measure of strength.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass

import chess
import chess.engine

from benchmarks.common import header, real_boards
from engine import default_model_path, load_model
from engine.backends.torch_backend import set_torch_threads
from search import Limits, Searcher, SearchParams
from uci.loop import SEARCH_PARAM_OF_OPTION
from uci.options import OptionValues


@dataclass
class Config:
    """A named set of UCI option values."""

    name: str
    options: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Config:
        """``"name:Option=value,Option=value"`` (options may be empty)."""
        name, _, rest = text.partition(":")
        options = dict(item.split("=", 1) for item in rest.split(",") if item.strip())
        return cls(name.strip(), {k.strip(): v.strip() for k, v in options.items()})

    def params(self) -> SearchParams:
        """The search parameters of these option values (validated as the UCI engine validates them)."""
        values, params = OptionValues(), SearchParams(smart_pruning_factor=0.0)
        for option_name, text in self.options.items():
            option, value = values.set(option_name, text)
            field = SEARCH_PARAM_OF_OPTION.get(option.name.lower())
            if field is None:
                raise SystemExit(f"{option.name} is not a search option")
            setattr(params, field, value)
        return params


class Judge:
    """Stockfish's expected score after a move, cached per (position, move)."""

    def __init__(self, path: str, nodes: int) -> None:
        self.engine = chess.engine.SimpleEngine.popen_uci(path)
        self.engine.configure({"Threads": 1, "Hash": 16, "UCI_ShowWDL": True})
        self.limit = chess.engine.Limit(nodes=nodes)
        self.cache: dict[tuple[str, chess.Move | None], tuple[float, chess.Move]] = {}

    def score(self, board: chess.Board, move: chess.Move | None) -> tuple[float, chess.Move]:
        """Expected score for the side to move (and the move analysed); ``move`` None: Stockfish's choice."""
        key = (board.fen(), move)
        if key not in self.cache:
            info = self.engine.analyse(board, self.limit, root_moves=[move] if move else None)
            expectation = info["wdl"].relative.expectation() if "wdl" in info else (
                info["score"].relative.wdl().expectation())
            self.cache[key] = (expectation, info["pv"][0])
        return self.cache[key]

    def loss(self, board: chess.Board, move: chess.Move) -> tuple[float, bool]:
        """Expected-score loss of ``move`` against Stockfish's best move, and whether it is that move."""
        best_score, best_move = self.score(board, None)
        if move == best_move:
            return 0.0, True
        return max(0.0, best_score - self.score(board, move)[0]), False

    def close(self) -> None:
        """Quit Stockfish."""
        self.engine.quit()


def main() -> None:
    """Run every configuration on the same positions and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file (default: the bundled network)")
    parser.add_argument("--backend", default="fp32", help="evaluator backend (default fp32)")
    parser.add_argument("--nodes", type=int, default=300, help="nodes per search")
    parser.add_argument("--positions", type=int, default=400, help="held-out positions searched")
    parser.add_argument("--config", action="append", default=[], help="name:Option=value,...; repeatable")
    parser.add_argument("--stockfish", default="/usr/games/stockfish", help="Stockfish binary")
    parser.add_argument("--sf-nodes", type=int, default=50_000, help="Stockfish nodes per judged move")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    configs = [Config.parse(text) for text in (args.config or ["default:"])]
    params = [config.params() for config in configs]

    header(f"search quality: {args.nodes} nodes, {args.positions} positions, backend {args.backend}")
    set_torch_threads(args.threads)
    evaluator = load_model(args.model or default_model_path(), backend=args.backend)
    boards = [b for b in real_boards() if not b.is_game_over()][: args.positions]
    judge = Judge(args.stockfish, args.sf_nodes)
    losses: list[list[float]] = []
    try:
        print(f"{'config':>14} {'agree':>7} {'mean loss':>10} {'blunders':>9} {'NPS':>7}  options")
        for config, p in zip(configs, params, strict=True):
            searcher = Searcher(evaluator, p)
            row, agree, nodes, start = [], 0, 0, time.perf_counter()
            search_time = 0.0
            for board in boards:
                searcher.new_game()
                t0 = time.perf_counter()
                result = searcher.search(board, Limits(nodes=args.nodes))
                search_time += time.perf_counter() - t0
                nodes += result.info.nodes
                loss, same = judge.loss(board, result.best_move)
                row.append(loss)
                agree += same
            searcher.close()
            losses.append(row)
            blunders = sum(loss > 0.1 for loss in row) / len(row)
            options = ", ".join(f"{k}={v}" for k, v in config.options.items()) or "(defaults)"
            print(f"{config.name:>14} {agree / len(row):>7.1%} {statistics.mean(row):>10.4f} {blunders:>9.1%} "
                  f"{nodes / search_time:>7,.0f}  {options}   [{time.perf_counter() - start:.0f} s]", flush=True)
    finally:
        judge.close()
    if len(configs) > 1:
        print(f"\npaired against {configs[0].name} (negative: fewer expected points lost)")
        for config, row in zip(configs[1:], losses[1:], strict=True):
            diffs = [b - a for a, b in zip(losses[0], row, strict=True)]
            se = statistics.stdev(diffs) / math.sqrt(len(diffs))
            print(f"{config.name:>14} {statistics.mean(diffs):+.4f} +/- {se:.4f} (1 s.e.)")


if __name__ == "__main__":
    main()
