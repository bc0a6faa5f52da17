"""Errors raised by the engine package."""

from __future__ import annotations

from pathlib import Path


class ModelFileError(Exception):
    """A model file is missing, unreadable, truncated, or not a network this engine can run.

    The message names the file and says what was expected.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class BackendUnavailableError(ValueError):
    """A backend was asked for that this installation cannot run (an optional dependency is missing).

    The message says what to install.
    """


class CommandError(Exception):
    """A bad request to an ``azengine`` subcommand: the command line reports it as one line on stderr
    (``azengine <command>: error: <message>``) and exits with code 2."""
