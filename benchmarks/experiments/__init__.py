"""One-off experiments whose results are recorded in docs/notes/ (see README.md here)."""
