"""VGG-16 LargeFOV backbone used by BANA stage 1 and DeepLab-V1 (SPEC §1, §3).

The layer names follow the authors' (AffinityNet / DeepLab) naming,
``conv1_1 ... conv5_3, fc6, fc7``, so their checkpoints (and DeepLab's
``vgg_caffe.pth``) map one to one (SPEC §7). torchvision's ``vgg16`` must be
converted offline first (``tools/model_converters/vgg16_to_largefov.py``):
:func:`~.vgg16_weights.load_vgg16_weights` refuses it.
"""
from __future__ import annotations

import copy
from typing import List, Mapping, Optional, Tuple, Union

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import PretrainedInit
from mmengine.registry import MODELS
from torch import Tensor

from .vgg16_arch import (VGG16_CONV_NAMES, VGG16_FC_NAMES, VGG16_LARGEFOV_ARCH,
                         VGG16_STAGES, vgg16_largefov_param_shapes)
from .vgg16_weights import VGG16PretrainedInit

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


# the layer tables are re-exported from .vgg16_arch
__all__ = [
    'VGG16LargeFOV', 'vgg16_largefov_param_shapes', 'VGG16_LARGEFOV_ARCH',
    'VGG16_STAGES', 'VGG16_CONV_NAMES', 'VGG16_FC_NAMES'
]
