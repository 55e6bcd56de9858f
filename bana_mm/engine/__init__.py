"""Scope-neutral hooks (mmengine root registry)."""
from .hooks import ProgressBarHook

__all__ = ['ProgressBarHook']
