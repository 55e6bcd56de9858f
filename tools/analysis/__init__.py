"""Analysis tools (comparisons of label folders)."""
