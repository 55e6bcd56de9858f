"""Classifiers and decode heads of stage 3 (SPEC §3, supplement §4-5).

:class:`NoiseAwareHeadMixin` turns any mmseg decode head that classifies its
penultimate feature with ``self.cls_seg(feat)`` (ASPPHead, Depthwise-
SeparableASPPHead, FCNHead, PSPHead, ...) into a BANA head:

* the classifier becomes a bias-free cosine classifier, logits =
  tau * cos(phi(p), W_c) (supplement eq. 3), or the dot-product ("DP")
  classifier of supplement Table 5;
* ``phi`` (the feature entering the classifier) and ``W`` are handed to the
  loss, so a :class:`~bana_mm.seg.losses.NoiseAwareLoss` gets sigma of eq.
  (12), and the second label map (Yret, ``gt_ret_seg``) is read from the data
  samples.

:func:`noise_aware_head` builds and registers such a head from any mmseg head
class; ``NAL<Name>`` variants of common mmseg heads are registered here.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Type

import torch
import torch.nn as nn
from mmengine.model import normal_init
from torch import Tensor

from mmseg.models.decode_heads import (ASPPHead, DepthwiseSeparableASPPHead,
                                       FCNHead, PSPHead)
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.losses import accuracy
from mmseg.models.utils import resize
from mmseg.registry import MODELS

from ..core.nal import cosine_map, dot_logits

CLASSIFIER_TYPES = ('cosine', 'dot')


class NoiseAwareHeadMixin:
    """Cosine/dot classifier and two-map losses for an mmseg decode head.

    Put it first in the bases: ``class H(NoiseAwareHeadMixin, ASPPHead)``.

    Args:
        classifier: ``dict(type='cosine', tau=20.0)`` (default) or
            ``dict(type='dot')``; both without bias, weights N(0, 0.01).
        All other arguments go to the mmseg head.
    """

    def __init__(self, *args, classifier: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cfg = dict(type='cosine', tau=20.0)
        cfg.update(classifier or {})
        if cfg['type'] not in CLASSIFIER_TYPES:
            raise ValueError(f"classifier type must be one of "
                             f"{CLASSIFIER_TYPES}, got {cfg['type']!r}")
        self.classifier_type: str = cfg['type']
        self.tau = float(cfg.get('tau', 20.0))
        self.conv_seg = nn.Conv2d(self.channels, self.out_channels, 1,
                                  bias=False)
        normal_init(self.conv_seg, mean=0, std=0.01)
        #: penultimate feature phi of the last forward (B, D, h, w).
        self.last_phi: Optional[Tensor] = None

    # ----------------------------------------------------------- classifier
    def classify(self, phi: Tensor) -> Tensor:
        """Logits (B, C, h, w) of the cosine (eq. 3) or dot classifier."""
        if self.classifier_type == 'cosine':
            return self.tau * cosine_map(phi, self.conv_seg.weight)
        return dot_logits(phi, self.conv_seg.weight)

    def cls_seg(self, feat: Tensor) -> Tensor:
        """Dropout (if any), remember phi, classify."""
        if self.dropout is not None:
            feat = self.dropout(feat)
        self.last_phi = feat
        return self.classify(feat)

    def cosine_scores(self, seg_logits: Tensor, phi: Tensor,
                      size: Sequence[int],
                      upsampled_logits: Optional[Tensor] = None) -> Tensor:
        """cos(phi, W_c) upsampled to ``size`` (bilinear, SPEC §3).

        With the cosine classifier this is ``upsampled_logits / tau`` (exact,
        as upsampling is linear), which saves a second upsampling.
        """
        if self.classifier_type == 'cosine':
            if upsampled_logits is not None:
                return upsampled_logits / self.tau
            cos = seg_logits / self.tau
        else:
            cos = cosine_map(phi, self.conv_seg.weight)
        return resize(cos, size=size, mode='bilinear',
                      align_corners=self.align_corners)

    # ---------------------------------------------------------------- losses
    def _stack_ret_gt(self, batch_data_samples: List) -> Tensor:
        maps = []
        for sample in batch_data_samples:
            if 'gt_ret_seg' not in sample:
                raise KeyError(
                    f"{sample.metainfo.get('img_path', 'a sample')} has no "
                    'gt_ret_seg (Yret): load it with LoadPseudoLabels and '
                    'pack it with PackTwoMapSegInputs')
            maps.append(sample.gt_ret_seg.data)
        return torch.stack(maps, dim=0)

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: List) -> Dict[str, Tensor]:
        """Losses at label resolution; two-map losses get Ycrf, Yret, cos."""
        losses_decode = self.loss_decode if isinstance(
            self.loss_decode, nn.ModuleList) else [self.loss_decode]
        if not any(getattr(l, 'uses_two_maps', False) for l in losses_decode):
            return super().loss_by_feat(seg_logits, batch_data_samples)
        phi, self.last_phi = self.last_phi, None
        ycrf = self._stack_batch_gt(batch_data_samples).squeeze(1)
        yret = self._stack_ret_gt(batch_data_samples).squeeze(1)
        if yret.shape != ycrf.shape:
            raise ValueError(f'Ycrf {tuple(ycrf.shape)} and Yret '
                             f'{tuple(yret.shape)} batches differ in shape')
        size = ycrf.shape[-2:]
        logits = resize(seg_logits, size=size, mode='bilinear',
                        align_corners=self.align_corners)
        # cosine classifier: the loss derives cos = logits / tau per pixel
        cos = None if self.classifier_type == 'cosine' else \
            self.cosine_scores(seg_logits, phi, size, logits)
        losses: Dict[str, Tensor] = {}
        for loss_decode in losses_decode:
            if getattr(loss_decode, 'uses_two_maps', False):
                parts = loss_decode(logits, ycrf, yret, cos=cos,
                                    tau=self.tau)
            else:  # a stock mmseg loss, on Ycrf
                parts = {loss_decode.loss_name: loss_decode(
                    logits, ycrf, ignore_index=self.ignore_index)}
            for key, value in parts.items():
                losses[key] = losses[key] + value if key in losses else value
        losses['acc_seg'] = accuracy(logits, ycrf,
                                     ignore_index=self.ignore_index)
        return losses


def noise_aware_head(base: Type[BaseDecodeHead],
                     name: Optional[str] = None,
                     register: bool = True) -> Type[BaseDecodeHead]:
    """``NAL<Base>``: ``base`` with :class:`NoiseAwareHeadMixin`.

    Registers the class in mmseg's ``MODELS`` (unless ``register=False``).
    Works for any head whose forward ends with ``self.cls_seg(feat)``.
    """
    name = name or f'NAL{base.__name__}'
    doc = (f'{base.__name__} with the BANA cosine classifier and the '
           f'noise-aware loss (see NoiseAwareHeadMixin).')
    cls = type(name, (NoiseAwareHeadMixin, base), {'__doc__': doc})
    cls.__module__ = __name__
    if register:
        MODELS.register_module(module=cls)
    return cls


NALASPPHead = noise_aware_head(ASPPHead)
NALDepthwiseSeparableASPPHead = noise_aware_head(DepthwiseSeparableASPPHead)
NALFCNHead = noise_aware_head(FCNHead)
NALPSPHead = noise_aware_head(PSPHead)


@MODELS.register_module()
class DeepLabV1Head(NoiseAwareHeadMixin, BaseDecodeHead):
    """DeepLab-V1 LargeFOV classifier on fc7 (SPEC §3).

    The backbone (:class:`~bana_mm.models.VGG16LargeFOV`, fc6 dilation 12)
    already ends with fc7 + ReLU + dropout, so phi = fc7 and the head is the
    classifier alone. ``channels`` defaults to ``in_channels``.
    """

    def __init__(self, in_channels: int, channels: Optional[int] = None,
                 dropout_ratio: float = 0.0, **kwargs) -> None:
        channels = in_channels if channels is None else channels
        if channels != in_channels:
            raise ValueError('DeepLabV1Head classifies fc7 directly: '
                             f'channels ({channels}) must equal in_channels '
                             f'({in_channels})')
        super().__init__(in_channels=in_channels, channels=channels,
                         dropout_ratio=dropout_ratio, **kwargs)

    def forward(self, inputs: Tuple[Tensor]) -> Tensor:
        return self.cls_seg(self._transform_inputs(inputs))


@MODELS.register_module()
class DeepLabV2Head(NoiseAwareHeadMixin, BaseDecodeHead):
    """DeepLab-V2 head: sum of four dilated 3x3 convs, ReLU, classifier.

    ``c1..c4``: in_channels -> channels (256), dilations 6, 12, 18, 24, no
    bias (SPEC §3, §7 names); phi = ReLU(sum).
    """

    def __init__(self, in_channels: int = 2048, channels: int = 256,
                 dilations: Sequence[int] = (6, 12, 18, 24),
                 dropout_ratio: float = 0.0, **kwargs) -> None:
        super().__init__(in_channels=in_channels, channels=channels,
                         dropout_ratio=dropout_ratio, **kwargs)
        if len(dilations) < 1:
            raise ValueError('DeepLabV2Head needs at least one dilation')
        self.dilations = tuple(int(d) for d in dilations)
        for i, d in enumerate(self.dilations, start=1):
            conv = nn.Conv2d(self.in_channels, self.channels, 3, padding=d,
                             dilation=d, bias=False)
            normal_init(conv, mean=0, std=0.01)
            self.add_module(f'c{i}', conv)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, inputs: Tuple[Tensor]) -> Tensor:
        x = self._transform_inputs(inputs)
        feat = sum(getattr(self, f'c{i}')(x)
                   for i in range(1, len(self.dilations) + 1))
        return self.cls_seg(self.relu(feat))


__all__ = ['NoiseAwareHeadMixin', 'noise_aware_head', 'NALASPPHead',
           'NALDepthwiseSeparableASPPHead', 'NALFCNHead', 'NALPSPHead',
           'DeepLabV1Head', 'DeepLabV2Head', 'CLASSIFIER_TYPES']
