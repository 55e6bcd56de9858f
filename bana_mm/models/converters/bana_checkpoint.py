"""Convert the BANA authors' released checkpoints to this project (SPEC §7).

The authors' checkpoints are plain state dicts with keys
``backbone.<name>.weight/bias`` (``name`` in ``conv1_1..conv5_3, fc6, fc7``)
and ``classifier.weight``. Each supported checkpoint is one row of
:data:`CONVERSIONS`: where the classifier goes in this project's model and
how the class count is reported. The backbone is the same for all of them.

Registry-free: only torch and the backbone's shape table are used, so the
logic is usable from scripts and tests without building any model.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor

from bana_mm.models.backbones.vgg16_arch import vgg16_largefov_param_shapes
from bana_mm.utils.checkpoint import read_checkpoint
from bana_mm.utils.io import atomic_open

#: Top-level / state-dict entries of training checkpoints that are not model
#: weights; they are dropped with a warning instead of failing.
IGNORED_KEYS = frozenset({
    'optimizer', 'optimizer_state_dict', 'optim', 'scheduler', 'lr_scheduler',
    'scaler', 'epoch', 'iter', 'iteration', 'step', 'meta', 'args', 'config',
    'cfg', 'best_score', 'best_miou', 'message_hub'
})

_BACKBONE_SRC_PREFIX = 'backbone.'
_BACKBONE_DST_PREFIX = 'backbone.'


class CheckpointConversionError(ValueError):
    """A source checkpoint does not have the expected keys or shapes."""


@dataclass(frozen=True)
class Conversion:
    """How one of the authors' checkpoints maps to this project (SPEC §7).

    Attributes:
        description (str): Human readable name of the source checkpoint.
        classifier (str): Destination key of the source ``classifier.weight``.
        optional (dict): Optional source key -> destination key.
        num_classes_offset (int): ``num_classes`` reported in ``meta`` is the
            classifier's output channels minus this (1 when the model adds
            the background class itself, as ``BAPHead`` does).
    """
    description: str
    classifier: str
    optional: Dict[str, str] = field(default_factory=dict)
    num_classes_offset: int = 0


#: Supported conversions, keyed by the CLI's ``--stage``.
CONVERSIONS: Dict[str, Conversion] = {
    'stage1':
    Conversion(
        description='BANA stage-1 classifier (BAP, VGG-16)',
        classifier='head.classifier.weight',
        num_classes_offset=1),
    'deeplabv1':
    Conversion(
        description='BANA stage-3 DeepLab-V1 LargeFOV (VGG-16)',
        classifier='decode_head.conv_seg.weight',
        optional={'classifier.bias': 'decode_head.conv_seg.bias'}),
}


def unwrap_checkpoint(
        checkpoint: Mapping) -> Tuple[Dict[str, object], List[str]]:
    """Return the flat state dict of ``checkpoint`` and the dropped keys.

    Handles ``{'state_dict': ...}`` / ``{'model': ...}`` wrappers (other
    top-level entries, e.g. ``optimizer``, are dropped) and ``module.``
    prefixes from ``DataParallel``.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointConversionError('Expected a checkpoint dict, got '
                                        f'{type(checkpoint).__name__}')
    dropped: List[str] = []
    for wrapper in ('state_dict', 'model'):
        inner = checkpoint.get(wrapper)
        if isinstance(inner, Mapping):
            dropped = [k for k in checkpoint if k != wrapper]
            checkpoint = inner
            break
    state: Dict[str, object] = OrderedDict()
    for key, value in checkpoint.items():
        while key.startswith('module.'):
            key = key[len('module.'):]
        state[key] = value
    return state, dropped


def _fmt(shape) -> str:
    return str(tuple(shape))


def convert_bana_checkpoint(src_state: Mapping,
                            stage: str = 'stage1',
                            source: Optional[str] = None,
                            num_classes: Optional[int] = None) -> dict:
    """Map an authors' checkpoint to an mmengine-style checkpoint (SPEC §7).

    Args:
        src_state (Mapping): The loaded source checkpoint (a state dict,
            possibly wrapped in ``state_dict`` / ``model``).
        stage (str): A key of :data:`CONVERSIONS`. Defaults to 'stage1'.
        source (str, optional): Recorded as ``meta['converted_from']``.
        num_classes (int, optional): If given, the expected ``num_classes``
            (as reported in ``meta``); a mismatch is an error.

    Returns:
        dict: ``{'meta': {...}, 'state_dict': OrderedDict}``.

    Raises:
        CheckpointConversionError: Missing, unexpected or wrongly shaped
            keys; the message lists all of them.
    """
    if stage not in CONVERSIONS:
        raise KeyError(f'Unknown stage {stage!r}; choose from '
                       f'{sorted(CONVERSIONS)}')
    conv = CONVERSIONS[stage]
    state, dropped = unwrap_checkpoint(src_state)

    # Source key -> (destination key, expected shape or None if free).
    table: Dict[str, Tuple[str, Optional[Tuple[int, ...]]]] = OrderedDict()
    for key, shape in vgg16_largefov_param_shapes().items():
        table[_BACKBONE_SRC_PREFIX + key] = (_BACKBONE_DST_PREFIX + key, shape)
    table['classifier.weight'] = (conv.classifier, None)
    optional = dict(conv.optional)

    for key in list(state):
        if key in table or key in optional:
            continue
        if key in IGNORED_KEYS or not isinstance(state[key], Tensor):
            dropped.append(key)
            del state[key]
    if dropped:
        print_log(
            f'convert ({stage}): ignoring non-weight entries {dropped}',
            logger='current',
            level=logging.WARNING)

    missing = [k for k in table if k not in state]
    unexpected = [k for k in state if k not in table and k not in optional]
    errors: List[str] = []
    if missing:
        errors.append(f'missing keys: {missing}')
    if unexpected:
        errors.append(f'unexpected keys: {unexpected}')

    fc7_out = vgg16_largefov_param_shapes()['fc7.weight'][0]
    cls_rows: Optional[int] = None
    for key, (_, shape) in table.items():
        if key not in state:
            continue
        if not isinstance(state[key], Tensor):
            errors.append(f'{key!r} is a {type(state[key]).__name__}, '
                          'not a tensor')
            continue
        got = tuple(state[key].shape)
        if key == 'classifier.weight':
            if len(got) == 4 and got[1:] == (fc7_out, 1, 1) and got[0] >= 2:
                cls_rows = got[0]
            else:
                errors.append(f'{key!r} has shape {_fmt(got)}, expected '
                              f'(num_classes, {fc7_out}, 1, 1)')
        elif got != shape:
            errors.append(
                f'{key!r} has shape {_fmt(got)}, expected {_fmt(shape)}')
    for key in optional:
        if key in state and cls_rows is not None and \
                tuple(state[key].shape) != (cls_rows, ):
            errors.append(f'{key!r} has shape {_fmt(state[key].shape)}, '
                          f'expected ({cls_rows},)')

    found_classes = None if cls_rows is None else (cls_rows -
                                                   conv.num_classes_offset)
    if (num_classes is not None and found_classes is not None
            and found_classes != num_classes):
        errors.append(f"'classifier.weight' has {cls_rows} rows, i.e. "
                      f'num_classes={found_classes}, expected {num_classes}')
    if errors:
        raise CheckpointConversionError(
            f'Cannot convert {source or "checkpoint"} as {stage} '
            f'({conv.description}):\n  ' + '\n  '.join(errors))

    out: Dict[str, Tensor] = OrderedDict()
    for key, (dst, _) in table.items():
        out[dst] = state[key].detach().cpu().contiguous()
    for key, dst in optional.items():
        if key in state:
            out[dst] = state[key].detach().cpu().contiguous()
    meta = dict(
        converted_from=source or 'state dict',
        source_format=conv.description,
        stage=stage,
        num_classes=found_classes)
    return dict(meta=meta, state_dict=out)


def convert_bana_stage1(src_state: Mapping,
                        source: Optional[str] = None,
                        num_classes: Optional[int] = None) -> dict:
    """Convert the authors' stage-1 checkpoint (``BAPClassifier`` keys).

    ``meta['num_classes']`` is the number of foreground classes L (the
    classifier has L + 1 rows). See :func:`convert_bana_checkpoint`.
    """
    return convert_bana_checkpoint(
        src_state, stage='stage1', source=source, num_classes=num_classes)


def save_checkpoint_atomic(checkpoint: dict, dst: str) -> None:
    """``torch.save`` to ``dst`` via a temporary file and ``os.replace``."""
    with atomic_open(dst) as f:
        torch.save(checkpoint, f)


def convert_file(src: str,
                 dst: str,
                 stage: str = 'stage1',
                 num_classes: Optional[int] = None) -> dict:
    """Load ``src``, convert it and write ``dst`` atomically.

    The source is read with ``torch.load(weights_only=True)``: released
    state dicts need nothing else, and no code from the file is executed.

    Returns:
        dict: The converted checkpoint.
    """
    src_state = read_checkpoint(src, map_location='cpu')
    checkpoint = convert_bana_checkpoint(
        src_state, stage=stage, source=src, num_classes=num_classes)
    save_checkpoint_atomic(checkpoint, dst)
    return checkpoint


__all__ = [
    'CONVERSIONS', 'CheckpointConversionError', 'Conversion',
    'convert_bana_checkpoint', 'convert_bana_stage1', 'convert_file',
    'save_checkpoint_atomic', 'unwrap_checkpoint'
]
