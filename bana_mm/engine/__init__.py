"""Scope-neutral hooks (mmengine root registry)."""
from .hooks import ProgressBarHook, PseudoLabelHook

__all__ = ['ProgressBarHook', 'PseudoLabelHook']
