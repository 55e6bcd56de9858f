"""Embedded default data: a deterministic synthetic box-supervised
segmentation dataset.

The names are resolved lazily (PEP 562) so that
``python -m bana_mm.datagen.synthetic``
does not import the module twice.
"""
from typing import Any

__all__ = ['generate_synthetic_dataset', 'SYNTHETIC_CLASSES']


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import synthetic
        return getattr(synthetic, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
