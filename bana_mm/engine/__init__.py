"""Scope-neutral hooks (mmengine root registry)."""
from .hooks import (CPUMemoryReuseHook, FiniteLossHook, NonFiniteLossError,
                    ProgressBarHook, add_default_hooks, add_finite_loss_check)

__all__ = [
    'CPUMemoryReuseHook', 'FiniteLossHook', 'NonFiniteLossError',
    'ProgressBarHook', 'add_default_hooks', 'add_finite_loss_check'
]
