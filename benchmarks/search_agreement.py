"""Does the int8 network play the fp32 network's move after a search? The quantization check at equal nodes.

Each network searches every position of the built-in held-out set (``engine/data/heldout.fen``, never
used in training or calibration) for ``--nodes`` nodes through the real UCI engine (one thread,
``ucinewgame`` before each position, so no tree or cache carries over), and the share of positions
where each int8 file's best move equals fp32's is printed. The engines run side by side, one process
per network.

    python -m benchmarks.search_agreement [--model FP32 --int8 FILE [--int8 FILE]] [--nodes 800]

Without ``--int8`` the int8 files are the fp32 model's static-int8 and ONNX int8 siblings (the bundled
network ships both). ``--control`` adds a second fp32 run: the search's own repeatability, which should be
100% (one thread, fixed node count). ``--quick``: 20 positions, 100 nodes, with the control.
"""

from __future__ import annotations

import argparse
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import searched_moves
from engine.bundled import HELDOUT_FILE, default_model_path
from engine.nets.files import sibling_path
from engine.quant.calibration import heldout_positions


def main() -> None:
    """Search the held-out positions with fp32 and each int8 file; print how often the moves agree."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(default_model_path()), help="fp32 model (default: the bundled one)")
    parser.add_argument("--int8", action="append", help="int8 file (give several; default: the model's siblings)")
    parser.add_argument("--nodes", type=int, default=800, help="nodes per search (default 800)")
    parser.add_argument("--positions", type=int, default=0, help="first N held-out positions (default: all)")
    parser.add_argument("--control", action="store_true", help="also search with fp32 a second time")
    parser.add_argument("--engine", default=shutil.which("azengine") or "azengine", help="azengine command")
    parser.add_argument("--quick", action="store_true", help="20 positions, 100 nodes, with the control")
    args = parser.parse_args()
    if args.quick:
        args.positions, args.nodes, args.control = 20, 100, True
    int8_files = args.int8 or [str(sibling_path(Path(args.model), kind)) for kind in ("static-int8", "onnx-int8")]

    boards = heldout_positions(args.positions or None)
    runs = {"fp32": {"WeightsFile": args.model, "Backend": "fp32"}}
    runs.update({path: {"WeightsFile": path} for path in int8_files})
    if args.control:
        runs["fp32 again"] = dict(runs["fp32"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(searched_moves, options, boards, args.nodes, args.engine)
                   for name, options in runs.items()}
        moves = {name: future.result() for name, future in futures.items()}
    print(f"{len(boards)} held-out positions ({HELDOUT_FILE}), {args.nodes} nodes per search, one thread; "
          f"same best move as fp32 ({args.model}):")
    for name, played in moves.items():
        if name != "fp32":
            same = sum(a == b for a, b in zip(played, moves["fp32"], strict=True))
            print(f"  {name}: {same}/{len(boards)} = {100 * same / len(boards):.1f}%")


if __name__ == "__main__":
    main()
