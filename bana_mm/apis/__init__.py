"""High-level entry points (the one-command pipeline)."""
from .pipeline import VOCLayout, parse_stages, run_pipeline

__all__ = ['VOCLayout', 'parse_stages', 'run_pipeline']
