"""Every UCI option, declared once: its UCI name and type, default, range and help text.

The ``option`` lines sent after ``uci``, the validation of ``setoption`` and the options table in
README.md (``python -m uci.options``) all come from :data:`OPTIONS`. Names follow lc0 where lc0 has
the option; floats are ``string`` options, as in lc0.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine import BACKENDS
from engine.cpu import default_threads

DEFAULT_WEIGHTS = "<bundled>"  # not "<default>": python-chess would split on the word "default"


class OptionError(ValueError):
    """A ``setoption`` with an unknown name or a value out of range."""


@dataclass(frozen=True)
class Option:
    """One UCI option: ``kind`` is ``check``, ``spin``, ``combo``, ``string`` or ``float`` (sent as string)."""

    name: str
    kind: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def uci_line(self) -> str:
        """The ``option name ... type ...`` line announced after ``uci``."""
        if self.kind == "check":
            return f"option name {self.name} type check default {'true' if self.default else 'false'}"
        if self.kind == "spin":
            low, high = int(self.minimum), int(self.maximum)
            return f"option name {self.name} type spin default {self.default} min {low} max {high}"
        if self.kind == "combo":
            vars_ = " ".join(f"var {c}" for c in self.choices)
            return f"option name {self.name} type combo default {self.default} {vars_}"
        return f"option name {self.name} type string default {self.default}"

    def parse(self, text: str) -> Any:
        """The typed value of ``text``; :class:`OptionError` when it is not valid for this option."""
        text = text.strip()
        if self.kind == "check":
            if text.lower() not in ("true", "false"):
                raise OptionError(f"{self.name} takes true or false, not {text!r}")
            return text.lower() == "true"
        if self.kind in ("spin", "float"):
            try:
                value: float = int(text) if self.kind == "spin" else float(text)
            except ValueError:
                raise OptionError(f"{self.name} takes a{'n integer' if self.kind == 'spin' else ' number'}, "
                                  f"not {text!r}") from None
            if value != value or not (self.minimum <= value <= self.maximum):  # NaN fails too
                raise OptionError(f"{self.name} must lie in [{self.minimum:g}, {self.maximum:g}], not {text}")
            return value
        if self.kind == "combo":
            for choice in self.choices:
                if choice.lower() == text.lower():
                    return choice
            raise OptionError(f"{self.name} takes one of {', '.join(self.choices)}, not {text!r}")
        return text

    def default_text(self) -> str:
        """The default as the README shows it."""
        if self.kind == "check":
            return "true" if self.default else "false"
        return str(self.default)

    def range_text(self) -> str:
        """Range or choices as the README shows them."""
        if self.kind in ("spin", "float"):
            return f"{self.minimum:g} .. {self.maximum:g}"
        if self.kind == "combo":
            return ", ".join(self.choices)
        return ""


OPTIONS: tuple[Option, ...] = (
    Option("WeightsFile", "string", DEFAULT_WEIGHTS,
           "Model file: an fp32 state_dict (pytorch-alpha-zero format) or an int8 file made by "
           "'azengine quantize'. <bundled> is the network that comes with the engine."),
    Option("Backend", "combo", "auto",
           "How the network runs. auto: what the file is; the bundled network runs in its fastest form on "
           "this CPU (onnx-int8, no torch needed; static-int8 on Intel CPUs with AMX: docs/PERFORMANCE.md). "
           "An int8 backend on an fp32 file uses the <stem>_<type>_quantized.pt (onnx: <stem>.onnx, "
           "<stem>_static_quantized.onnx) file beside it, "
           "else converts at load time.", choices=BACKENDS),
    Option("Threads", "spin", default_threads(),
           "Threads for the network (torch or ONNX Runtime intra-op); the search itself runs on one more "
           "thread. The default depends on the CPU (its flags) and its cores, by measurements with the search "
           "running, alone and beside a second engine: docs/PERFORMANCE.md.", 1, 256),
    Option("MinibatchSize", "spin", 32, "Positions evaluated per network call.", 1, 1024),
    Option("CPuct", "float", 1.745, "Exploration constant of PUCT at zero visits.", 0.0, 100.0),
    Option("CPuctBase", "float", 38739.0, "Visits scale of the growth of the exploration term.", 1.0, 1e9),
    Option("CPuctFactor", "float", 3.894, "How much the exploration term grows with visits.", 0.0, 1000.0),
    Option("FpuValue", "float", 0.33,
           "First-play urgency reduction: unvisited moves get the parent's Q minus this times "
           "sqrt(policy of the visited moves).", -100.0, 100.0),
    Option("FpuValueAtRoot", "float", 0.33, "FpuValue at the root.", -100.0, 100.0),
    Option("PolicyTemperature", "float", 1.0,
           "Softmax temperature of the network's move priors; above 1 flattens them so the search looks "
           "wider.", 0.01, 100.0),
    Option("NNCacheSize", "spin", 200_000, "Positions whose network output is cached.", 0, 100_000_000),
    Option("RamLimitMb", "spin", 0,
           "Tree memory limit in MiB (0: none). When reached the search stops growing and says so.", 0, 1_000_000),
    Option("MoveOverheadMs", "spin", 100, "Milliseconds kept back per move for GUI and OS delays.", 0, 100_000),
    Option("SlowMover", "float", 1.5,
           "Scales the share of the clock planned per move (not the increment's share); above 1 spends "
           "more time early in the game. 1.5 beat 1.0 by 26 +/- 25 Elo at 10+0.1 (docs/PERFORMANCE.md).",
           0.1, 10.0),
    Option("MultiPV", "spin", 1, "Number of best lines reported.", 1, 500),
    Option("SmartPruningFactor", "float", 1.33,
           "Stop early when no other move can catch the best one in the time left; higher stops sooner, "
           "0 disables.", 0.0, 10.0),
    Option("VerboseMoveStats", "check", False, "Per-move statistics of the root as 'info string' lines."),
    Option("UCI_ShowWDL", "check", False, "Add win/draw/loss per mille to 'info' lines (derived from Q)."),
    Option("Ponder", "check", False, "Let the GUI use 'go ponder' (thinking on the opponent's time)."),
    Option("UCI_Chess960", "check", False,
           "Chess960 (Fischer random): 'position fen' takes X-FEN and Shredder-FEN, castling moves are "
           "sent and read as the king taking its own rook (e1h1)."),
    Option("SyzygyPath", "string", "<empty>",
           "Directories of Syzygy tablebases, separated by ':' (';' on Windows). Positions the tables hold "
           "are not evaluated by the network but scored by their win/draw/loss (within the 50-move rule); "
           "at the root the distance-to-zero tables choose the moves. <empty>: none."),
    Option("Temperature", "float", 0.0,
           "Choose the move at random, weighted by visits^(1/T), in the first TempCutoffMove moves (0: best "
           "move always). Use 0.5-1 in matches so that games differ.", 0.0, 100.0),
    Option("TempCutoffMove", "spin", 8, "Last full move number at which Temperature applies.", 0, 1000),
    Option("Seed", "spin", 0, "Seed of the random choices (Temperature).", 0, 2**31 - 1),
)

_BY_NAME = {o.name.lower(): o for o in OPTIONS}


class OptionValues:
    """Current option values; names are case-insensitive, as UCI requires."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {o.name.lower(): o.default for o in OPTIONS}

    def set(self, name: str, text: str) -> tuple[Option, Any]:
        """Validate and store ``text`` for option ``name``; returns the option and its new value."""
        option = _BY_NAME.get(name.strip().lower())
        if option is None:
            raise OptionError(f"unknown option {name.strip()!r}")
        value = option.parse(text)
        self._values[option.name.lower()] = value
        return option, value

    def __getitem__(self, name: str) -> Any:
        return self._values[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(o.name for o in OPTIONS)


def markdown_table() -> str:
    """The README's options table."""
    rows = ["| Option | Type | Default | Range | Meaning |", "|---|---|---|---|---|"]
    for o in OPTIONS:
        kind = "string (float)" if o.kind == "float" else o.kind
        rows.append(f"| `{o.name}` | {kind} | `{o.default_text()}` | {o.range_text()} | {o.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
