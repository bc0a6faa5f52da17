"""Every UCI option, declared once: its UCI name and type, default, range and help text.

The ``option`` lines sent after ``uci``, the validation of ``setoption`` and the options table in
README.md (``python -m uci.options``) all come from :data:`OPTIONS`. Names follow lc0 where lc0 has
the option; floats are ``string`` options, as in lc0. A search option names the
:class:`~search.types.SearchParams` field it sets and takes its default from that field.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine import BACKENDS
from engine.cpu import default_threads
from search.types import RAM_LIMIT_CAP_MB, RAM_LIMIT_SHARE, param_default

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
    param: str = ""         # the SearchParams field the option sets ("" for none)
    default_doc: str = ""   # the README's words for a default that depends on the machine

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
        """The default as the ``option`` line shows it."""
        if self.kind == "check":
            return "true" if self.default else "false"
        return str(self.default)

    def readme_default(self) -> str:
        """The default as the README shows it (in words where it depends on the machine)."""
        return self.default_doc or self.default_text()

    def range_text(self) -> str:
        """Range or choices as the README shows them."""
        if self.kind in ("spin", "float"):
            return f"{self.minimum:g} .. {self.maximum:g}"
        if self.kind == "combo":
            return ", ".join(self.choices)
        return ""


def search_option(name: str, kind: str, param: str, help_text: str, minimum: float, maximum: float,
                  default_doc: str = "") -> Option:
    """An option that sets the SearchParams field ``param``, with that field's default."""
    return Option(name, kind, param_default(param), help_text, minimum, maximum, param=param,
                  default_doc=default_doc)


OPTIONS: tuple[Option, ...] = (
    Option("WeightsFile", "string", DEFAULT_WEIGHTS,
           "Model file: an fp32 state_dict (pytorch-alpha-zero's AlphaZeroNet or azengine's seresnet), "
           "an int8 or ONNX file made by 'azengine quantize', or an lc0 network (.pb.gz, e.g. Maia; every backend). "
           "<bundled> is the network that comes with the engine."),
    Option("Backend", "combo", "auto",
           "How the network runs. auto: what the file is; the bundled network runs in its fastest form on "
           "this CPU (onnx-int8, no torch needed; static-int8 on Intel CPUs with AMX, loaded in the background "
           "while onnx-int8 plays, switched to between searches: docs/PERFORMANCE.md). "
           "An int8 backend on an fp32 file uses the <stem>_<type>_quantized.pt (onnx: <stem>.onnx, "
           "<stem>_static_quantized.onnx) file beside it, "
           "else converts at load time.", choices=BACKENDS),
    Option("Threads", "spin", default_threads(),
           "Threads for the network (torch or ONNX Runtime intra-op); the search itself runs on one more "
           "thread. The default depends on the CPU (its flags) and its cores, by measurements with the search "
           "running, alone and beside a second engine: docs/PERFORMANCE.md.", 1, 256, default_doc="by CPU"),
    search_option("MinibatchSize", "spin", "minibatch_size", "Positions evaluated per network call.", 1, 1024),
    search_option("CPuct", "float", "cpuct", "Exploration constant of PUCT at zero visits.", 0.0, 100.0),
    search_option("CPuctBase", "float", "cpuct_base", "Visits scale of the growth of the exploration term.", 1.0, 1e9),
    search_option("CPuctFactor", "float", "cpuct_factor",
                  "How much the exploration term grows with visits.", 0.0, 1000.0),
    search_option("FpuValue", "float", "fpu_value",
                  "First-play urgency reduction: unvisited moves get the parent's Q minus this times "
                  "sqrt(policy of the visited moves).", -100.0, 100.0),
    search_option("FpuValueAtRoot", "float", "fpu_value_at_root", "FpuValue at the root.", -100.0, 100.0),
    search_option("PolicyTemperature", "float", "policy_temperature",
                  "Softmax temperature of the network's move priors; above 1 flattens them so the search looks "
                  "wider.", 0.01, 100.0),
    search_option("NNCacheSize", "spin", "nn_cache_size", "Positions whose network output is cached.", 0, 100_000_000),
    search_option("RamLimitMb", "spin", "ram_limit_mb",
                  "Memory limit in MiB of the search tree and the NN cache together (0: none; the NN cache "
                  "takes at most a quarter). When reached the tree stops growing, the search goes on refining "
                  "it and hashfull shows 1000.", 0, 1_000_000,
                  default_doc=f"{RAM_LIMIT_SHARE:.0%} of physical memory, at most {RAM_LIMIT_CAP_MB}"),
    search_option("MoveOverheadMs", "spin", "move_overhead_ms",
                  "Milliseconds kept back per move for GUI and OS delays.", 0, 100_000),
    search_option("SlowMover", "float", "slow_mover",
                  "Scales the share of the clock planned per move (not the increment's share); above 1 spends "
                  "more time early in the game (docs/PERFORMANCE.md).",
                  0.1, 10.0),
    search_option("MultiPV", "spin", "multipv", "Number of best lines reported.", 1, 500),
    search_option("SmartPruningFactor", "float", "smart_pruning_factor",
                  "Stop early when no other move can catch the best one in the time left; higher stops sooner, "
                  "0 disables.", 0.0, 10.0),
    Option("VerboseMoveStats", "check", False, "Per-move statistics of the root as 'info string' lines."),
    Option("UCI_ShowWDL", "check", False,
           "Add win/draw/loss per mille to 'info' lines: the network's own W/D/L backed up through the tree "
           "for WDL networks (seresnet, lc0), else derived from Q."),
    Option("Ponder", "check", False, "Let the GUI use 'go ponder' (thinking on the opponent's time)."),
    Option("UCI_Chess960", "check", False,
           "Chess960 (Fischer random): 'position fen' takes X-FEN and Shredder-FEN, castling moves are "
           "sent and read as the king taking its own rook (e1h1)."),
    Option("SyzygyPath", "string", "<empty>",
           "Directories of Syzygy tablebases, separated by ':' (';' on Windows). Positions the tables hold "
           "are not evaluated by the network but scored by their win/draw/loss (within the 50-move rule); "
           "at the root the distance-to-zero tables choose the moves. <empty>: none."),
    search_option("Temperature", "float", "temperature",
                  "Choose the move at random, weighted by visits^(1/T), in the first TempCutoffMove moves (0: best "
                  "move always). Use 0.5-1 in matches so that games differ.", 0.0, 100.0),
    search_option("TempCutoffMove", "spin", "temp_cutoff_move",
                  "Last full move number at which Temperature applies.", 0, 1000),
    search_option("Seed", "spin", "seed",
                  "Seed of the random choices (Temperature), applied once when set, not at every search; "
                  "0: fresh entropy.", 0, 2**31 - 1),
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
        rows.append(f"| `{o.name}` | {kind} | `{o.readme_default()}` | {o.range_text()} | {o.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
