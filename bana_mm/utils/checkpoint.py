"""Load mmengine checkpoints on torch >= 2.6 without turning off ``weights_only``.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7's
checkpoints carry a few non-tensor objects in ``meta`` (the message hub's
:class:`~mmengine.logging.HistoryBuffer` and numpy scalars/arrays), so resume,
``load_from`` and ``tools/test.py`` fail with ``UnpicklingError``.

Instead of asking users to set ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (which
re-enables arbitrary code execution), we allowlist exactly those objects.
``HistoryBuffer`` pickles bound methods as ``getattr(buffer, name)``; we map the
pickle's ``builtins.getattr`` to a getter that only resolves HistoryBuffer
statistics methods, so the allowlist does not open general attribute access.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

_ALLOWED = False


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to what a pickled HistoryBuffer needs."""
    from mmengine.logging import HistoryBuffer
    if isinstance(obj, HistoryBuffer) or obj is HistoryBuffer:
        public_method = not name.startswith('_') and callable(
            getattr(HistoryBuffer, name, None))
        if public_method:
            return getattr(obj, name)
    raise torch.serialization.pickle.UnpicklingError(
        f'Refusing getattr({type(obj).__name__}, {name!r}) while loading a '
        'checkpoint: only public HistoryBuffer methods are allowed.')


def _numpy_globals() -> list:
    """numpy objects that mmengine's message hub puts in checkpoints.

    numpy 2 pickles them under ``numpy._core``; numpy 1 under ``numpy.core``.
    Both names are registered so checkpoints move between environments.
    """
    try:
        multiarray = np._core.multiarray  # numpy >= 2
    except AttributeError:  # pragma: no cover - numpy 1.x
        multiarray = np.core.multiarray
    entries = [np.ndarray, np.dtype]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        entries.append((multiarray._reconstruct, f'{module}._reconstruct'))
        entries.append((multiarray.scalar, f'{module}.scalar'))
    # numpy 2 pickles dtypes through their classes (numpy.dtypes.Float64DType).
    for dtype_name in ('float64', 'float32', 'float16', 'int64', 'int32',
                       'int16', 'int8', 'uint8', 'bool_'):
        entries.append(type(np.dtype(getattr(np, dtype_name))))
    return entries


def allow_mmengine_checkpoints() -> None:
    """Allowlist the objects of mmengine checkpoints for ``weights_only`` load.

    Idempotent and cheap; called when :mod:`bana_mm` is imported, which every
    config of this project does through ``custom_imports``.
    """
    global _ALLOWED
    if _ALLOWED or not hasattr(torch.serialization, 'add_safe_globals'):
        return
    from mmengine.logging import HistoryBuffer
    torch.serialization.add_safe_globals([
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        *_numpy_globals(),
    ])
    _ALLOWED = True
