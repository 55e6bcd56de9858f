"""Scope-neutral data transforms (registered in mmengine's root registry)."""
from .transforms import RandomRescale

__all__ = ['RandomRescale']
