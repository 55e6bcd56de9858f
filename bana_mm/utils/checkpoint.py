"""Load mmengine checkpoints on torch >= 2.6 with ``weights_only`` on.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7's
checkpoints carry a few non-tensor objects in ``meta`` (the message hub's
:class:`~mmengine.logging.HistoryBuffer` and numpy scalars/arrays), so resume,
``load_from`` and ``tools/test.py`` fail with ``UnpicklingError``.

Instead of asking users to set ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (which
re-enables arbitrary code execution), we allowlist exactly those objects.
``HistoryBuffer`` pickles bound methods as ``getattr(buffer, name)``; we map
the pickle's ``builtins.getattr`` to a getter that only resolves HistoryBuffer
statistics methods, so the allowlist does not open general attribute access.

Every local checkpoint that mmengine loads (``load_from``, resume,
``tools/test.py``, stage 2, ``init_cfg`` pretrained weights) goes through
:func:`read_checkpoint`: a truncated, empty or non-checkpoint file is a
:class:`CheckpointReadError` naming the file, without torch's advice to load
with ``weights_only=False``.
"""
from __future__ import annotations

import os.path as osp
import re
from typing import Any, Dict

import numpy as np
import torch

_ALLOWED = False


class CheckpointReadError(RuntimeError):
    """A file that is not a readable checkpoint; the message names it."""


def _reason(err: Exception) -> str:
    """A short cause from a ``torch.load`` error, without its advice to
    turn off ``weights_only`` (which would allow arbitrary code)."""
    text = str(err)
    match = re.search(
        r'WeightsUnpickler error:\s*(.+?)(?:\s+Please use|\n\n|$)', text, re.S)
    if match:
        text = match.group(1)
    text = ' '.join(text.split())
    sentence = text.split('. ')[0].rstrip('.')
    if not sentence or 'weights_only' in sentence:
        sentence = ''
    name = type(err).__name__
    return f'{name}: {sentence[:200]}' if sentence else name


def read_checkpoint(filename: str, map_location: Any = None) -> Any:
    """``torch.load`` of a local file (torch's default ``weights_only``).

    Raises:
        FileNotFoundError naming a missing file; :class:`CheckpointReadError`
        naming a file that is empty, truncated, not a torch file, or holds
        objects outside the allowlist.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} not found')
    if osp.getsize(filename) == 0:
        raise CheckpointReadError(
            f'{filename} is not a readable checkpoint: the file is empty')
    try:
        return torch.load(filename, map_location=map_location)
    except MemoryError:
        raise
    except Exception as err:  # torch raises many types for a bad file
        raise CheckpointReadError(
            f'{filename} is not a readable checkpoint (truncated, not saved '
            f'by torch, or holding objects other than weights and mmengine '
            f'metadata): {_reason(err)}') from None


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


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file checkpoint loader, as :func:`read_checkpoint`."""
    return read_checkpoint(filename, map_location)


def allow_mmengine_checkpoints() -> None:
    """Allowlist the objects of mmengine checkpoints for ``weights_only`` load
    and route mmengine's local checkpoint loading through
    :func:`read_checkpoint`.

    Idempotent and cheap; called when :mod:`bana_mm` is imported, which every
    config of this project does through ``custom_imports``.
    """
    global _ALLOWED
    if _ALLOWED:
        return
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    if not hasattr(torch.serialization, 'add_safe_globals'):
        _ALLOWED = True
        return
    from mmengine.logging import HistoryBuffer
    torch.serialization.add_safe_globals([
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        *_numpy_globals(),
    ])
    _ALLOWED = True


# ------------------------------------------------- does it fit the model?
def state_dict_of(ckpt: Any, checkpoint: str) -> dict:
    """The weights of a loaded checkpoint (mmengine's ``state_dict`` entry
    or a bare state dict), without a DDP ``module.`` prefix."""
    if not isinstance(ckpt, dict):
        raise ValueError(f'{checkpoint}: not a checkpoint (a '
                         f'{type(ckpt).__name__}, not a dict of weights)')
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict):
        raise ValueError(f'{checkpoint}: its state_dict is a '
                         f'{type(state).__name__}, not a dict of weights')
    return {
        (k[7:] if k.startswith('module.') else k): v
        for k, v in state.items()
    }


def _listed(keys, limit: int = 8) -> str:
    keys = list(keys)
    more = f' ... ({len(keys)} in all)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def checkpoint_mismatch(model, state: dict) -> Dict[str, list]:
    """Keys of ``state`` that do not fit ``model``: ``missing``,
    ``unexpected`` and ``shape`` (name, checkpoint shape, model shape)."""
    own = model.state_dict()
    return dict(
        missing=sorted(set(own) - set(state)),
        unexpected=sorted(set(state) - set(own)),
        shape=[(k, tuple(getattr(state[k], 'shape', ())), tuple(own[k].shape))
               for k in sorted(set(own) & set(state))
               if tuple(getattr(state[k], 'shape', ())) != tuple(own[k].shape)
               ])


def describe_mismatch(checkpoint: str, problems: Dict[str, list], state: dict,
                      model_name: str) -> str:
    """One message naming the file, ``model_name`` and the keys that do not
    fit, with a guess at what the checkpoint is."""
    parts = []
    if not state:
        parts.append('it holds no weights (empty state dict)')
    if problems['missing']:
        parts.append(f'missing keys: {_listed(problems["missing"])}')
    if problems['unexpected']:
        parts.append(f'unexpected keys: {_listed(problems["unexpected"])}')
    if problems['shape']:
        parts.append('shape mismatch (checkpoint vs model): ' +
                     _listed(f'{k} {list(a)} vs {list(b)}'
                             for k, a, b in problems['shape']))
    unexpected = problems['unexpected']
    hint = ''
    if any(
            k.startswith(('decode_head.', 'auxiliary_head.'))
            for k in unexpected):
        hint = (' It looks like a stage-3 / MDH (mmseg segmentor) '
                'checkpoint.')
    elif any(k.startswith('head.classifier') for k in unexpected):
        hint = ' It looks like a stage-1 BAP classifier checkpoint.'
    elif problems['shape']:
        hint = (' Was it trained with another config (e.g. full width vs '
                'the tiny preset, another number of classes)?')
    return (f'{checkpoint} does not fit {model_name}; ' + '; '.join(parts) +
            '.' + hint)


def fitting_state(model, ckpt: Any, checkpoint: str, allow_partial: bool,
                  model_name: str) -> dict:
    """The state dict of ``ckpt`` checked against ``model``: missing,
    unexpected or shape-mismatched keys raise ``ValueError`` naming the
    file, ``model_name`` and the keys; ``allow_partial`` warns instead and
    drops the mismatched shapes (the rest of ``model`` keeps its values)."""
    import warnings
    state = state_dict_of(ckpt, checkpoint)
    problems = checkpoint_mismatch(model, state)
    if any(problems.values()):
        message = describe_mismatch(checkpoint, problems, state, model_name)
        if not allow_partial:
            raise ValueError(message + ' (--allow-partial-checkpoint loads '
                             'the keys that fit, at your own risk)')
        warnings.warn(
            'PARTIAL CHECKPOINT LOAD (--allow-partial-checkpoint): ' +
            message + ' The other weights keep their initial values.',
            stacklevel=3)
        for key, _, _ in problems['shape']:
            state.pop(key)
    return state
