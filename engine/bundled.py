"""Files shipped inside the package: the default network and the built-in position sets."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL_NAME = "azengine_default.pt"
#: Positions for static-int8 calibration (one FEN per line, from real games).
CALIBRATION_FILE = "calibration.fen"
#: Held-out positions for accuracy checks (other games than the calibration set).
HELDOUT_FILE = "heldout.fen"


def default_model_path() -> Path:
    """Path of the network bundled with the package (fp32 state_dict; its int8 siblings lie beside it)."""
    return Path(str(resources.files("engine") / "models" / DEFAULT_MODEL_NAME))


def data_path(name: str) -> Path:
    """Path of a file shipped under ``engine/data``."""
    return Path(str(resources.files("engine") / "data" / name))
