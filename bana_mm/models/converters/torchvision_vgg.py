"""Initial VGG-16 weights for VGG16LargeFOV (SPEC §1 "Initial weights").

Registry-free (torch only, plus the backbone's shape table). Converts

* torchvision's ImageNet ``vgg16`` state dict (``features.N``,
  ``classifier.N``; RGB input in [0, 1] normalised by mean/std, 4096-wide
  fc6/fc7) into the LargeFOV layout ``conv1_1 .. conv5_3, fc6, fc7`` for
  Caffe-style input (BGR, 0-255, minus the Caffe mean (104.008, 116.669,
  122.675), std 1):

  - conv1_1 (function-preserving): input channels permuted RGB -> BGR,
    weight divided by 255 * std, and the mean difference folded into the
    bias, ``b' = b + sum_{c,i,j} W[:, c, i, j] * (M_c / 255 - m_c) / s_c``
    (M = Caffe mean in RGB order, m / s = torchvision's mean / std). The
    output equals torchvision's on the same image except on the one-pixel
    zero-padding border, where the padded value differs (0 in either input
    convention means a different colour) and no bias can compensate.
  - conv1_2 .. conv5_3: copied unchanged.
  - fc6 / fc7 (DeepLab-LargeFOV's decimation): ``classifier.0.weight``
    (4096 x 25088) is reshaped to 4096 x 512 x 7 x 7; fc6 keeps every 4th
    output channel (0, 4, ..., 4092) and the spatial taps 0, 3, 6 in both
    directions -> 1024 x 512 x 3 x 3. Taps 3 apart at pool5's stride 32 are
    96 input pixels apart, i.e. fc6's dilation 12 at stride 8. ``fc7`` =
    ``classifier.3.weight[0::4, 0::4]`` (1024 x 1024, as 1x1 conv); biases
    ``[0::4]``. No rescaling (DeepLab decimated without one), so fc6/fc7
    are a starting point, not function-preserving. ``classifier.6``
    (ImageNet's 1000 classes) is dropped.

* the authors' DeepLab ``vgg_caffe.pth`` (bare ``conv1_1.weight .. fc7.bias``,
  already Caffe-style and 1024 wide; extra keys such as a ``classifier`` are
  dropped) and this project's layout (the same names, optionally under
  ``backbone.``, e.g. a stage-1 checkpoint): copied, shapes checked. A
  full-width (4096) fc6/fc7 in these names is decimated as above.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from bana_mm.models.backbones.vgg16_arch import (VGG16_CONV_NAMES,
                                                 vgg16_largefov_param_shapes)

#: torchvision vgg16 ``features`` index of each of the 13 conv layers.
TORCHVISION_CONV_IDS: Tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21,
                                         24, 26, 28)
#: torchvision's ImageNet normalisation (RGB, on [0, 1] images).
TORCHVISION_MEAN: Tuple[float, float, float] = (0.485, 0.456, 0.406)
TORCHVISION_STD: Tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Caffe / DeepLab mean, BGR order, on 0-255 images (SPEC §1).
CAFFE_MEAN_BGR: Tuple[float, float, float] = (104.008, 116.669, 122.675)
#: fc6 decimation: output channel step and kept 7x7 taps (DeepLab-LargeFOV).
FC_CHANNEL_STEP = 4
FC6_TAPS: Tuple[int, ...] = (0, 3, 6)
CONVERTER = 'tools/model_converters/vgg16_to_largefov.py'


class VGGConversionError(ValueError):
    """The source checkpoint is not a VGG-16 layout this module converts."""


def unwrap(checkpoint: Mapping) -> Dict[str, Tensor]:
    """Flat state dict: ``state_dict`` / ``model`` unwrapped, ``module.``
    and (for full-model checkpoints) ``backbone.`` stripped."""
    if not isinstance(checkpoint, Mapping):
        raise VGGConversionError('expected a checkpoint dict, got '
                                 f'{type(checkpoint).__name__}')
    for wrapper in ('state_dict', 'model'):
        if isinstance(checkpoint.get(wrapper), Mapping):
            checkpoint = checkpoint[wrapper]
            break
    state: Dict[str, Tensor] = OrderedDict()
    for key, value in checkpoint.items():
        while key.startswith('module.'):
            key = key[len('module.'):]
        state[key] = value
    if not any(k.startswith(('conv1_1.', 'features.')) for k in state):
        inner = OrderedDict((k[len('backbone.'):], v)
                            for k, v in state.items()
                            if k.startswith('backbone.'))
        state = inner or state
    return state


def detect_layout(state: Mapping[str, Tensor]) -> str:
    """'torchvision' (``features.N``) or 'largefov' (``conv1_1`` names)."""
    if any(k.startswith('features.') for k in state):
        return 'torchvision'
    if any(k.startswith('conv1_1.') for k in state):
        return 'largefov'
    raise VGGConversionError(
        'neither torchvision vgg16 keys (features.N.weight) nor VGG-16 '
        f'LargeFOV keys (conv1_1.weight ...); first keys: {list(state)[:5]}')


def fold_conv1_1(weight: Tensor, bias: Tensor) -> Tuple[Tensor, Tensor]:
    """conv1_1 for Caffe input from torchvision's conv1_1 (see module doc)."""
    weight, bias = weight.double(), bias.double()
    std = torch.tensor(TORCHVISION_STD, dtype=torch.float64)
    mean = torch.tensor(TORCHVISION_MEAN, dtype=torch.float64)
    caffe_rgb = torch.tensor(CAFFE_MEAN_BGR[::-1], dtype=torch.float64)
    # torchvision input x_tv[c] = x_caffe[2 - c] / (255 s_c) + offset_c
    scaled = weight / (255.0 * std).view(1, 3, 1, 1)
    offset = (caffe_rgb / 255.0 - mean) / std
    new_bias = bias + (weight.sum(dim=(2, 3)) * offset).sum(dim=1)
    return scaled.flip(1).float(), new_bias.float()


def decimate_fc6(weight: Tensor, bias: Tensor) -> Tuple[Tensor, Tensor]:
    """4096 x 25088 (or 4096 x 512 x 7 x 7) -> 1024 x 512 x 3 x 3."""
    weight = weight.reshape(weight.shape[0], -1, 7, 7)
    taps = torch.tensor(FC6_TAPS)
    weight = weight[::FC_CHANNEL_STEP].index_select(2, taps).index_select(
        3, taps)
    return weight.contiguous().clone(), bias[::FC_CHANNEL_STEP].clone()


def decimate_fc7(weight: Tensor, bias: Tensor) -> Tuple[Tensor, Tensor]:
    """4096 x 4096 -> 1024 x 1024 x 1 x 1 (rows and columns 0::4)."""
    weight = weight.reshape(weight.shape[0], weight.shape[1])
    weight = weight[::FC_CHANNEL_STEP, ::FC_CHANNEL_STEP]
    return (weight.reshape(*weight.shape, 1, 1).contiguous().clone(),
            bias[::FC_CHANNEL_STEP].clone())


def _from_torchvision(state: Mapping[str, Tensor], errors: List[str],
                      dropped: List[str]) -> Dict[str, Tensor]:
    out: Dict[str, Tensor] = OrderedDict()
    used = set()
    for idx, name in zip(TORCHVISION_CONV_IDS, VGG16_CONV_NAMES):
        for param in ('weight', 'bias'):
            key = f'features.{idx}.{param}'
            used.add(key)
            if key not in state:
                errors.append(f'missing {key!r} ({name}.{param})')
            else:
                out[f'{name}.{param}'] = state[key]
    fc_keys = {
        'fc6': ('classifier.0.weight', 'classifier.0.bias'),
        'fc7': ('classifier.3.weight', 'classifier.3.bias')
    }
    for name, keys in fc_keys.items():
        used.update(keys)
        if all(k in state for k in keys):
            out[f'{name}.weight'], out[f'{name}.bias'] = (
                state[k] for k in keys)
    for key in state:
        if key not in used:
            if key.endswith(('running_mean', 'running_var')):
                errors.append(f'{key!r}: torchvision vgg16_bn (BatchNorm) '
                              'cannot be converted; use plain vgg16')
            else:
                dropped.append(key)
    if 'conv1_1.weight' in out and 'conv1_1.bias' in out:
        out['conv1_1.weight'], out['conv1_1.bias'] = fold_conv1_1(
            out['conv1_1.weight'], out['conv1_1.bias'])
    return out


def convert_vgg16(checkpoint: Mapping,
                  fc: str = 'decimate',
                  source: Optional[str] = None) -> dict:
    """Convert a VGG-16 checkpoint to VGG16LargeFOV keys (module doc).

    Args:
        checkpoint: torchvision vgg16, the authors' ``vgg_caffe.pth`` or a
            VGG16LargeFOV (``backbone.``) state dict, possibly wrapped.
        fc: 'decimate' (fc6/fc7 as DeepLab-LargeFOV did) or 'drop' (leave
            fc6/fc7 out: the backbone keeps its random init for them).
        source: recorded in ``meta['converted_from']``.

    Returns:
        ``{'meta': {...}, 'state_dict': {conv1_1.weight: ..., ...}}``.
    """
    if fc not in ('decimate', 'drop'):
        raise ValueError(f"fc must be 'decimate' or 'drop', got {fc!r}")
    state = unwrap(checkpoint)
    layout = detect_layout(state)
    errors: List[str] = []
    dropped: List[str] = []
    if layout == 'torchvision':
        out = _from_torchvision(state, errors, dropped)
    else:
        out = OrderedDict()
        names = VGG16_CONV_NAMES + ('fc6', 'fc7')
        for key, value in state.items():
            if key.split('.')[0] in names and key.count('.') == 1:
                out[key] = value
            else:
                dropped.append(key)
    if fc == 'drop':
        for key in [k for k in out if k.startswith(('fc6.', 'fc7.'))]:
            dropped.append(key)
            del out[key]
    else:
        for name, fn in (('fc6', decimate_fc6), ('fc7', decimate_fc7)):
            w, b = out.get(f'{name}.weight'), out.get(f'{name}.bias')
            if w is not None and b is not None and w.shape[0] == 4096:
                out[f'{name}.weight'], out[f'{name}.bias'] = fn(w, b)
    shapes = vgg16_largefov_param_shapes()
    for key, shape in shapes.items():
        is_fc = key.startswith(('fc6.', 'fc7.'))
        if is_fc and (fc == 'drop' or key not in out):
            continue
        if key not in out:
            errors.append(f'missing {key!r}')
        elif tuple(out[key].shape) != shape:
            errors.append(f'{key!r} has shape {tuple(out[key].shape)}, '
                          f'expected {shape}')
    if errors:
        raise VGGConversionError(
            f'cannot convert {source or "checkpoint"} ({layout} layout):\n  ' +
            '\n  '.join(errors))
    out = OrderedDict((k, out[k].detach().float().contiguous().clone())
                      for k in shapes if k in out)
    meta = dict(
        converted_from=source or 'state dict',
        source_layout=layout,
        input_convention='caffe: BGR, 0-255, minus mean '
        f'{CAFFE_MEAN_BGR}, std 1',
        fc6_fc7=('decimated (every 4th channel, fc6 taps 0,3,6)'
                 if fc == 'decimate' else 'dropped (random init)'),
        dropped_keys=dropped)
    return dict(meta=meta, state_dict=out)


def convert_vgg16_file(src: str, dst: str, fc: str = 'decimate') -> dict:
    """Read ``src`` (weights only), convert, write ``dst`` atomically."""
    from bana_mm.utils.io import atomic_open
    try:
        checkpoint = torch.load(src, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise VGGConversionError(
            f'cannot read {src} as a weights-only torch checkpoint: '
            f'{e}') from e
    converted = convert_vgg16(checkpoint, fc=fc, source=src)
    with atomic_open(dst) as f:
        torch.save(converted, f)
    return converted


__all__ = [
    'CAFFE_MEAN_BGR', 'CONVERTER', 'TORCHVISION_CONV_IDS', 'TORCHVISION_MEAN',
    'TORCHVISION_STD', 'VGGConversionError', 'convert_vgg16',
    'convert_vgg16_file', 'decimate_fc6', 'decimate_fc7', 'detect_layout',
    'fold_conv1_1', 'unwrap'
]
