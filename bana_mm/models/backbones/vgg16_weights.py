"""Reading VGG-16 weights into :class:`~.vgg16_largefov.VGG16LargeFOV`
(SPEC §1, §7): this project's layout, the authors' / DeepLab ``vgg_caffe.pth``
names, and a clear refusal of layouts it would misread (torchvision's
``vgg16`` must be converted first with
``tools/model_converters/vgg16_to_largefov.py``).
"""
from __future__ import annotations

import logging
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from torch import Tensor

from .vgg16_arch import VGG16_CONV_NAMES, VGG16_FC_NAMES


class VGG16PretrainedInit(PretrainedInit):
    """``Pretrained`` initialiser that maps VGG-16 checkpoint layouts.

    Not registered: :meth:`VGG16LargeFOV.init_weights` substitutes it for
    ``type='Pretrained'`` so configs keep mmengine's usual spelling.
    """

    def __call__(self, module: nn.Module) -> None:
        from mmengine.runner.checkpoint import _load_checkpoint
        print_log(
            f'load VGG-16 weights into {module.__class__.__name__} from: '
            f'{self.checkpoint}' +
            (f' (prefix {self.prefix!r})' if self.prefix else ''),
            logger='current')
        checkpoint = _load_checkpoint(
            self.checkpoint, map_location=self.map_location)
        state_dict = _unwrap_state_dict(checkpoint)
        if self.prefix:
            prefix = self.prefix if self.prefix.endswith('.') else (
                self.prefix + '.')
            state_dict = {
                k[len(prefix):]: v
                for k, v in state_dict.items() if k.startswith(prefix)
            }
            if not state_dict:
                raise KeyError(f'No keys start with prefix {prefix!r} in '
                               f'{self.checkpoint}')
        try:
            load_vgg16_weights(module, state_dict, strict=False)
        except ValueError as e:
            raise ValueError(f'{self.checkpoint}: {e}') from e
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())


# ---------------------------------------------------------------------------
# Loading VGG-16 weights from other layouts
# ---------------------------------------------------------------------------

_NATIVE_KEY = re.compile(
    r'^(conv[1-5]_[1-3]|fc6|fc7)(?:\.\d+)?\.(weight|bias)$')
_TORCHVISION_KEY = re.compile(r'^features\.(\d+)\.(\w+)$')


def _unwrap_state_dict(checkpoint: Mapping) -> Dict[str, Tensor]:
    """Take ``state_dict``/``model`` out of a checkpoint; drop ``module.``."""
    if not isinstance(checkpoint, Mapping):
        raise TypeError('Expected a checkpoint dict, got '
                        f'{type(checkpoint).__name__}')
    for wrapper in ('state_dict', 'model'):
        inner = checkpoint.get(wrapper)
        if isinstance(inner, Mapping):
            checkpoint = inner
            break
    state_dict = OrderedDict()
    for key, value in checkpoint.items():
        while key.startswith('module.'):
            key = key[len('module.'):]
        state_dict[key] = value
    return state_dict


#: The offline converter for layouts this module must not load directly.
VGG16_CONVERTER = 'tools/model_converters/vgg16_to_largefov.py'


def _refuse_torchvision(state_dict: Mapping[str, Tensor]) -> None:
    """Raise: torchvision's layout would be misread (SPEC §1)."""
    bn = [k for k in state_dict if k.endswith('running_mean')]
    kind = 'vgg16_bn (BatchNorm)' if bn else 'vgg16'
    raise ValueError(
        f'This checkpoint is in torchvision\'s {kind} layout (features.N / '
        'classifier.N keys): RGB input in [0, 1] normalised by mean/std and '
        '4096-wide fc6/fc7. VGG16LargeFOV takes Caffe-style BGR 0-255 input '
        'minus the mean, with 1024-wide fc6/fc7; loaded as is, its colour '
        'channels would be swapped, its input ~58x too large and fc6/fc7 '
        f'random. Convert it first: python {VGG16_CONVERTER} SRC DST '
        '(plain vgg16 only), then load DST.')


def _map_native(
        state_dict: Mapping[str,
                            Tensor]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Map ``conv1_1.weight`` / ``conv1_1.0.weight``-style keys."""
    mapping: Dict[str, str] = {}
    skipped: Dict[str, str] = {}
    for key in state_dict:
        match = _NATIVE_KEY.match(key)
        if match is None:
            skipped[key] = 'not a VGG16LargeFOV parameter'
            continue
        target = f'{match.group(1)}.{match.group(2)}'
        if target in mapping.values():
            raise ValueError(f'Several checkpoint keys map to {target!r} '
                             f'(last one: {key!r})')
        mapping[key] = target
    return mapping, skipped


def _strip_backbone_prefix(
        state_dict: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    """Use ``backbone.*`` keys of a full-model checkpoint if no bare ones."""
    bare = any(
        _NATIVE_KEY.match(k) or _TORCHVISION_KEY.match(k) for k in state_dict)
    if bare:
        return state_dict
    stripped = OrderedDict((k[len('backbone.'):], v)
                           for k, v in state_dict.items()
                           if k.startswith('backbone.'))
    return stripped or state_dict


def load_vgg16_weights(backbone: nn.Module,
                       state_dict_or_path: Union[str, Mapping[str, Tensor]],
                       strict: bool = False) -> Dict[str, object]:
    """Load VGG-16 weights from several layouts into ``backbone`` (SPEC §1).

    Accepted layouts (after unwrapping ``state_dict`` / ``model`` and
    stripping ``module.``; a full-model checkpoint's ``backbone.`` prefix is
    also stripped):

    * this module's own names (``conv1_1.weight`` ... ``fc7.bias``), which
      are also those of the authors' DeepLab ``vgg_caffe.pth`` and of
      ``tools/model_converters/vgg16_to_largefov.py``'s output, and
      ``conv1_1.0.weight``-like ones.

    torchvision's ``vgg16`` layout (``features.N``) is refused with a
    ``ValueError`` naming the converter: it expects RGB mean/std input and
    would be misread by this Caffe-BGR backbone (SPEC §1).

    ``fc6``/``fc7`` are loaded when their shapes match and skipped with a
    warning otherwise. A conv layer with the wrong shape raises
    ``ValueError`` when ``strict`` (which also requires all 13 conv layers),
    and is skipped with a warning otherwise.

    Args:
        backbone (nn.Module): A :class:`VGG16LargeFOV` (or any module with
            the same parameter names).
        state_dict_or_path (str | Mapping): A state dict / checkpoint dict,
            or a path / URL understood by mmengine's checkpoint loader.
        strict (bool): See above. Defaults to False.

    Returns:
        dict: ``layout`` ('native'), ``loaded`` (list of
        backbone keys), ``skipped`` (source key -> reason) and ``missing``
        (backbone keys left untouched).
    """
    if isinstance(state_dict_or_path, str):
        from mmengine.runner.checkpoint import _load_checkpoint
        state_dict_or_path = _load_checkpoint(
            state_dict_or_path, map_location='cpu')
    state_dict = _strip_backbone_prefix(_unwrap_state_dict(state_dict_or_path))

    if any(_TORCHVISION_KEY.match(k) for k in state_dict):
        _refuse_torchvision(state_dict)
    layout = 'native'
    mapping, skipped = _map_native(state_dict)

    own = backbone.state_dict()
    loaded: List[str] = []
    errors: List[str] = []
    with torch.no_grad():
        for src_key, dst_key in mapping.items():
            value = state_dict[src_key]
            target = own.get(dst_key)
            if target is None:
                skipped[src_key] = f'{dst_key!r} not in the backbone'
                continue
            if tuple(value.shape) != tuple(target.shape):
                reason = (f'shape mismatch for {src_key!r} -> {dst_key!r}: '
                          f'checkpoint {tuple(value.shape)}, backbone '
                          f'{tuple(target.shape)}')
                is_fc = dst_key.split('.')[0] in VGG16_FC_NAMES
                if strict and not is_fc:
                    errors.append(reason)
                skipped[src_key] = reason
                continue
            target.copy_(value)
            loaded.append(dst_key)

    missing = [k for k in own if k not in loaded]
    if strict:
        conv_missing = [
            k for k in missing if k.split('.')[0] in VGG16_CONV_NAMES
        ]
        if conv_missing:
            errors.append(f'missing conv keys: {conv_missing}')
    if errors:
        raise ValueError(
            'Cannot load VGG-16 weights ({} layout):\n  '.format(layout) +
            '\n  '.join(errors))

    for src_key, reason in skipped.items():
        print_log(
            f'load_vgg16_weights: skipped {src_key!r}: {reason}',
            logger='current',
            level=logging.WARNING)
    if missing:
        print_log(
            f'load_vgg16_weights: keys not in the checkpoint keep their '
            f'initialisation: {missing}',
            logger='current',
            level=logging.WARNING)
    print_log(
        f'load_vgg16_weights: loaded {len(loaded)} tensors '
        f'({layout} layout)',
        logger='current')
    return dict(layout=layout, loaded=loaded, skipped=skipped, missing=missing)


__all__ = ['VGG16PretrainedInit', 'VGG16_CONVERTER', 'load_vgg16_weights']
