"""Network families and their file formats."""
