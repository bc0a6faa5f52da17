"""What top-1 on the depth-16 held-out labels the training labels themselves reach, by label depth.

``python -m benchmarks.policy_top1`` scores a network's raw policy against Stockfish's depth-16 move on
600 held-out positions. A network that imitated its training labels perfectly would score what the
labelling search scores. This script asks Stockfish at the generator's settings (MultiPV 4, 16 MB hash,
one thread, fresh hash per position, :class:`engine.training.stockfish_uci.StockfishLabeller`) at each
``--nodes`` count and prints how often its best move is the depth-16 move, over all positions and over the
balanced ones (as ``policy_top1`` splits them).

    python -m benchmarks.experiments.label_ceiling [--nodes 1000,3000,10000,30000] [--positions 600]
"""

from __future__ import annotations

import argparse
import shutil

from benchmarks.policy_top1 import BALANCED_CP, labels_path, read_labels
from engine.training.datagen import GenConfig
from engine.training.stockfish_uci import StockfishLabeller

MULTIPV, HASH_MB = GenConfig.multipv, GenConfig.hash_mb


def main(argv: list[str] | None = None) -> None:
    """Print the agreement of Stockfish's move at each node count with the depth-16 labels."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1000,3000,10000,30000", help="comma-separated node counts")
    parser.add_argument("--positions", type=int, default=600)
    parser.add_argument("--depth", type=int, default=16, help="which labels file of policy_top1 to score against")
    parser.add_argument("--stockfish", default=shutil.which("stockfish") or "/usr/games/stockfish")
    args = parser.parse_args(argv)
    path = labels_path(args.depth)
    if not path.exists():
        raise SystemExit(f"{path} is missing: run python -m benchmarks.policy_top1 --depth {args.depth} first")
    labels = read_labels(path)[: args.positions]
    balanced = [abs(cp) <= BALANCED_CP for _, _, cp in labels]
    print(f"{len(labels)} positions ({sum(balanced)} balanced, |ce| <= {BALANCED_CP}), labels: {path.name}; "
          f"Stockfish MultiPV {MULTIPV}, hash {HASH_MB} MB, fresh hash per position; agreement all / balanced")
    with StockfishLabeller(args.stockfish, HASH_MB, MULTIPV) as stockfish:
        for nodes in (int(n) for n in args.nodes.split(",")):
            hits = []
            for board, best, _ in labels:
                stockfish.new_game()
                infos = stockfish.analyse(board, nodes)
                hits.append(infos[0]["pv"][0] == best)
            all_share = sum(hits) / len(hits)
            balanced_share = sum(h for h, b in zip(hits, balanced, strict=True) if b) / max(1, sum(balanced))
            print(f"  {nodes:>7} nodes: {100 * all_share:5.1f}% / {100 * balanced_share:5.1f}%")


if __name__ == "__main__":
    main()
