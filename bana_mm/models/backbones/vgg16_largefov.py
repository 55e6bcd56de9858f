"""VGG-16 LargeFOV backbone used by BANA stage 1 and DeepLab-V1 (SPEC §1, §3).

The layer names follow the authors' (AffinityNet / DeepLab) naming,
``conv1_1 ... conv5_3, fc6, fc7``, so their checkpoints (and DeepLab's
``vgg_caffe.pth``) map one to one (SPEC §7). torchvision's ``vgg16`` must be
converted offline first (``tools/model_converters/vgg16_to_largefov.py``):
:func:`load_vgg16_weights` refuses it.
"""
from __future__ import annotations

import copy
import logging
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.registry import MODELS
from torch import Tensor

#: ``(name, in_channels, out_channels, kernel_size, dilation)`` of every conv
#: layer at width multiplier 1 (SPEC §1). ``fc6``'s dilation is configurable.
VGG16_LARGEFOV_ARCH: Tuple[Tuple[str, int, int, int, int], ...] = (
    ('conv1_1', 3, 64, 3, 1),
    ('conv1_2', 64, 64, 3, 1),
    ('conv2_1', 64, 128, 3, 1),
    ('conv2_2', 128, 128, 3, 1),
    ('conv3_1', 128, 256, 3, 1),
    ('conv3_2', 256, 256, 3, 1),
    ('conv3_3', 256, 256, 3, 1),
    ('conv4_1', 256, 512, 3, 1),
    ('conv4_2', 512, 512, 3, 1),
    ('conv4_3', 512, 512, 3, 1),
    ('conv5_1', 512, 512, 3, 2),
    ('conv5_2', 512, 512, 3, 2),
    ('conv5_3', 512, 512, 3, 2),
    ('fc6', 512, 1024, 3, 1),
    ('fc7', 1024, 1024, 1, 1),
)

#: Conv layers of each of the five VGG blocks (the unit of ``frozen_stages``).
VGG16_STAGES: Tuple[Tuple[str, ...], ...] = (
    ('conv1_1', 'conv1_2'),
    ('conv2_1', 'conv2_2'),
    ('conv3_1', 'conv3_2', 'conv3_3'),
    ('conv4_1', 'conv4_2', 'conv4_3'),
    ('conv5_1', 'conv5_2', 'conv5_3'),
)

#: The 13 VGG-16 conv layers, in forward order.
VGG16_CONV_NAMES: Tuple[str, ...] = tuple(n for s in VGG16_STAGES for n in s)
#: The fully-convolutional layers on top of conv5 (optional in checkpoints).
VGG16_FC_NAMES: Tuple[str, ...] = ('fc6', 'fc7')

# Stride of the max-pool after each block: output stride 2 * 2 * 2 = 8.
_POOL_STRIDES = (2, 2, 2, 1, 1)

# Default initialisation: Kaiming-normal (fan_out, relu), zero biases.
_DEFAULT_INIT_CFG = dict(
    type='Kaiming',
    layer='Conv2d',
    mode='fan_out',
    nonlinearity='relu',
    distribution='normal',
    bias=0)


def _scale(channels: int, width_mult: float) -> int:
    return max(1, int(channels * width_mult))


def vgg16_largefov_param_shapes(
        width_mult: float = 1.0) -> 'OrderedDict[str, Tuple[int, ...]]':
    """Expected state-dict shapes of :class:`VGG16LargeFOV` (SPEC §1).

    Args:
        width_mult (float): Channel multiplier, as in the backbone.

    Returns:
        OrderedDict: ``'conv1_1.weight' -> (64, 3, 3, 3)`` etc., in forward
        order, weight before bias.
    """
    shapes: 'OrderedDict[str, Tuple[int, ...]]' = OrderedDict()
    for name, cin, cout, k, _ in VGG16_LARGEFOV_ARCH:
        cin = cin if name == 'conv1_1' else _scale(cin, width_mult)
        cout = _scale(cout, width_mult)
        shapes[f'{name}.weight'] = (cout, cin, k, k)
        shapes[f'{name}.bias'] = (cout, )
    return shapes


@MODELS.register_module()
class VGG16LargeFOV(BaseModule):
    """VGG-16 LargeFOV backbone, output stride 8 (SPEC §1).

    conv1_1..conv4_3 are plain VGG-16 3x3 convs with ReLU; max-pools
    (kernel 3, pad 1) have stride 2 after blocks 1-3 and stride 1 after
    blocks 4-5; conv5_x use dilation 2; then a 3/1/1 average pool,
    ``fc6`` (3x3, 512 -> 1024, dilation ``fc6_dilation``), ReLU, Dropout2d,
    ``fc7`` (1x1, 1024 -> 1024), ReLU, Dropout2d. A 321x321 input gives a
    41x41 map.

    It is registered in mmengine's root ``MODELS`` registry, so it builds
    under both the mmdet and the mmseg default scope.

    Args:
        fc6_dilation (int): Dilation (and padding) of ``fc6``. 1 for the
            BANA stage-1 classifier, 12 for DeepLab-LargeFOV. Defaults to 1.
        dropout_ratio (float): Drop probability of the two Dropout2d layers.
            Defaults to 0.5.
        width_mult (float): Multiplier of every channel count (including
            1024 -> ``int(1024 * width_mult)``). Only meant for tiny CPU
            presets and tests. Defaults to 1.0.
        frozen_stages (int): Conv blocks 1..k whose parameters are frozen
            (``requires_grad=False``). -1 freezes nothing. Defaults to -1.
        norm_cfg (dict, optional): A norm layer after each of the 13 conv
            layers (named ``<conv>_norm``), e.g. ``dict(type='BN')``. Not in
            the paper; it lets tiny presets train from scratch in a few
            hundred iterations. Defaults to None.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to Kaiming-normal (fan_out, relu) weights and zero
            biases. ``dict(type='Pretrained', checkpoint=PATH)`` (optionally
            with ``prefix``) loads through :func:`load_vgg16_weights`: this
            module's names (= the authors' ``vgg_caffe.pth`` and the
            converter's output); torchvision's layout is refused with an
            error naming the converter; layers the checkpoint does not
            cover keep the default initialisation.
    """

    def __init__(
        self,
        fc6_dilation: int = 1,
        dropout_ratio: float = 0.5,
        width_mult: float = 1.0,
        frozen_stages: int = -1,
        norm_cfg: Optional[dict] = None,
        init_cfg: Optional[Union[dict, List[dict]]] = _DEFAULT_INIT_CFG,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if width_mult <= 0:
            raise ValueError(f'width_mult must be > 0, got {width_mult}')
        if fc6_dilation < 1:
            raise ValueError(f'fc6_dilation must be >= 1, got {fc6_dilation}')
        if not -1 <= frozen_stages <= len(VGG16_STAGES):
            raise ValueError('frozen_stages must be in [-1, '
                             f'{len(VGG16_STAGES)}], got {frozen_stages}')
        self.fc6_dilation = fc6_dilation
        self.dropout_ratio = dropout_ratio
        self.width_mult = width_mult
        self.frozen_stages = frozen_stages

        shapes = vgg16_largefov_param_shapes(width_mult)
        for name, _, _, k, dilation in VGG16_LARGEFOV_ARCH:
            cout, cin = shapes[f'{name}.weight'][:2]
            if name == 'fc6':
                dilation = fc6_dilation
            padding = dilation if k == 3 else 0
            self.add_module(
                name,
                nn.Conv2d(
                    cin,
                    cout,
                    k,
                    padding=padding,
                    dilation=dilation,
                    bias=True))
            if norm_cfg is not None and name.startswith('conv'):
                self.add_module(f'{name}_norm',
                                build_norm_layer(norm_cfg, cout)[1])
        self.with_norm = norm_cfg is not None
        for i, stride in enumerate(_POOL_STRIDES, start=1):
            self.add_module(
                f'pool{i}',
                nn.MaxPool2d(kernel_size=3, stride=stride, padding=1))
        self.pool5a = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)
        self.drop6 = nn.Dropout2d(dropout_ratio)
        self.drop7 = nn.Dropout2d(dropout_ratio)
        self.relu = nn.ReLU(inplace=True)
        self._freeze_stages()

    @property
    def out_channels(self) -> int:
        """Channels of the output feature map (``fc7``)."""
        return self.fc7.out_channels

    def _freeze_stages(self) -> None:
        for names in VGG16_STAGES[:max(self.frozen_stages, 0)]:
            for name in names:
                for param in getattr(self, name).parameters():
                    param.requires_grad = False
                if self.with_norm:
                    norm = getattr(self, f'{name}_norm')
                    norm.eval()
                    for param in norm.parameters():
                        param.requires_grad = False

    def train(self, mode: bool = True) -> 'VGG16LargeFOV':
        """Set train mode and keep frozen blocks frozen."""
        super().train(mode)
        self._freeze_stages()
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor]:
        """Return ``(fc7_features,)`` at 1/8 of the input resolution."""
        for i, names in enumerate(VGG16_STAGES, start=1):
            for name in names:
                x = getattr(self, name)(x)
                if self.with_norm:
                    x = getattr(self, f'{name}_norm')(x)
                x = self.relu(x)
            x = getattr(self, f'pool{i}')(x)
        x = self.pool5a(x)
        x = self.drop6(self.relu(self.fc6(x)))
        x = self.drop7(self.relu(self.fc7(x)))
        return (x, )

    def init_weights(self) -> None:
        """Initialise, reading ``Pretrained`` checkpoints in any VGG layout.

        ``Pretrained`` entries of ``init_cfg`` are replaced by
        :class:`VGG16PretrainedInit` and run after the other initialisers
        (the default Kaiming one when ``init_cfg`` has no other entry).
        """
        cfgs = self.init_cfg
        if not cfgs:
            return super().init_weights()
        cfgs = [cfgs] if isinstance(cfgs, Mapping) else list(cfgs)
        pretrained = [
            cfg for cfg in cfgs
            if cfg['type'] in ('Pretrained', PretrainedInit)
        ]
        if not pretrained:
            return super().init_weights()
        others = [cfg for cfg in cfgs if cfg not in pretrained]
        if not others:
            others = [copy.deepcopy(_DEFAULT_INIT_CFG)]
        original = self.init_cfg
        self.init_cfg = others + [
            dict(cfg, type=VGG16PretrainedInit) for cfg in pretrained
        ]
        try:
            super().init_weights()
        finally:
            self.init_cfg = original


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


__all__ = [
    'VGG16LargeFOV', 'VGG16PretrainedInit', 'VGG16_CONVERTER',
    'load_vgg16_weights',
    'vgg16_largefov_param_shapes', 'VGG16_LARGEFOV_ARCH', 'VGG16_STAGES',
    'VGG16_CONV_NAMES', 'VGG16_FC_NAMES'
]
