"""Progress bars on stderr for the conversion's stages (tqdm)."""

from __future__ import annotations

import sys

from tqdm import tqdm

from engine.quant import Progress


def progress_bars() -> Progress:
    """A :class:`engine.quant.Progress` that draws a tqdm bar for calibration and for each layer stage."""
    bars: dict[str, tqdm] = {}

    def positions(count: int) -> None:
        if "calibrating" not in bars:
            bars["calibrating"] = tqdm(desc="calibrating", unit="pos", file=sys.stderr, leave=False)
        bars["calibrating"].update(count)

    def layers(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = tqdm(total=total, desc=stage, unit="layer", file=sys.stderr, leave=False)
        bars[stage].update(done - bars[stage].n)
        if done == total:
            bars[stage].close()

    return Progress(positions=positions, layers=layers)
