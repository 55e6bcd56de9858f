"""Scope-neutral engine parts (hooks), registered in mmengine's root registry."""
from .hooks import ProgressBarHook

__all__ = ['ProgressBarHook']
