"""Scope-neutral data transforms (registered in mmengine's root registry)."""
from .transforms import BANAColorJitter, RandomRescale

__all__ = ['BANAColorJitter', 'RandomRescale']
