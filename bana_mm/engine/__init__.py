"""Scope-neutral hooks (mmengine root registry)."""
from .hooks import (FiniteLossHook, NonFiniteLossError, ProgressBarHook,
                    add_finite_loss_check)

__all__ = [
    'FiniteLossHook', 'NonFiniteLossError', 'ProgressBarHook',
    'add_finite_loss_check'
]
