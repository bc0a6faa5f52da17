"""The one error of ``azengine match``: bad input or an engine that cannot start."""

from __future__ import annotations

from engine.errors import CommandError


class MatchError(CommandError):
    """Bad input or an engine that cannot start: one line on stderr, exit code 2."""
