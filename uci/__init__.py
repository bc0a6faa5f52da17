"""The UCI engine: protocol loop, options, parsers of ``position``/``go`` and the ``azengine`` command."""

__version__ = "0.1.0"
