"""The one error of ``azengine match``: bad input or an engine that cannot start."""

from __future__ import annotations


class MatchError(Exception):
    """Bad input or an engine that cannot start: one line on stderr, exit code 2."""
