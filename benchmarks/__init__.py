"""Benchmarks of what ships (``python -m benchmarks.<name>``, each with ``--quick``); experiments/ apart."""
