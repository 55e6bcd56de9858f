"""Orchestration: one module a stage (stage1, stage2, stage3) and the
one-command pipeline chaining them; shared helpers in :mod:`.common`."""
from .common import VOCLayout
from .pipeline import parse_stages, run_pipeline

__all__ = ['VOCLayout', 'parse_stages', 'run_pipeline']
