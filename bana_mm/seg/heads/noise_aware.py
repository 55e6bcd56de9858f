"""The BANA classifier and two-map losses for any mmseg decode head
(SPEC §3, supplement §4-5).

:class:`NoiseAwareHeadMixin` turns an mmseg decode head whose forward ends
with ``self.cls_seg(feat)`` into a BANA head:

* the classifier is a bias-free cosine classifier, logits =
  tau * cos(phi(p), W_c) (supplement eq. 3), or the dot-product ("DP")
  classifier of supplement Table 5;
* ``forward`` returns :class:`NALOutput` (logits, phi): ``loss_by_feat``
  hands phi and W to a :class:`~bana_mm.seg.losses.NoiseAwareLoss` (sigma of
  eq. 12) together with Ycrf and Yret (``gt_ret_seg``); ``predict_by_feat``
  returns the plain logits upsampled to the input, so inference (and an
  exported model) sees an ordinary mmseg head;
* maps reach the image with ``align_corners=True`` by default (feature cell
  i at input pixel 8i, as the authors; SPEC §2); a config may set False.
"""
from __future__ import annotations

from typing import (Dict, List, NamedTuple, Optional, Sequence, Tuple, Type,
                    Union)

import torch
import torch.nn as nn
from mmengine.model import normal_init
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from ...core.nal import cosine_map, dot_logits
from ..losses import pixel_accuracy

CLASSIFIER_TYPES = ('cosine', 'dot')


class NALOutput(NamedTuple):
    """Forward output of a noise-aware head, both at feature resolution."""

    #: (B, C, h, w) classifier logits.
    logits: Tensor
    #: (B, D, h, w) feature phi entering the classifier (after dropout).
    phi: Tensor


def split_output(
        out: Union[NALOutput, Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
    """(logits, phi) of a head output; phi is None for a plain tensor."""
    if isinstance(out, NALOutput):
        return out.logits, out.phi
    if isinstance(out, Tensor):
        return out, None
    raise TypeError('expected NALOutput or Tensor logits, got '
                    f'{type(out).__name__}')


class NoiseAwareHeadMixin:
    """Cosine/dot classifier and two-map losses for an mmseg decode head.

    Put it first in the bases: ``class H(NoiseAwareHeadMixin, ASPPHead)``.

    Args:
        classifier: ``dict(type='cosine', tau=20.0)`` (default) or
            ``dict(type='dot')``; both without bias, weights N(0, 0.01).
        align_corners: of every upsampling of the head (to the labels in
            the loss, to the input in ``predict``); True = the authors'.
        All other arguments go to the mmseg head.
    """

    def __init__(self,
                 *args,
                 classifier: Optional[dict] = None,
                 align_corners: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, align_corners=align_corners, **kwargs)
        cfg = dict(type='cosine', tau=20.0)
        cfg.update(classifier or {})
        if cfg['type'] not in CLASSIFIER_TYPES:
            raise ValueError(f"classifier type must be one of "
                             f"{CLASSIFIER_TYPES}, got {cfg['type']!r}")
        self.classifier_type: str = cfg['type']
        self.tau = float(cfg.get('tau', 20.0))
        self.conv_seg = nn.Conv2d(
            self.channels, self.out_channels, 1, bias=False)
        normal_init(self.conv_seg, mean=0, std=0.01)

    # ----------------------------------------------------------- classifier
    def classify(self, phi: Tensor) -> Tensor:
        """Logits (B, C, h, w) of the cosine (eq. 3) or dot classifier."""
        if self.classifier_type == 'cosine':
            return self.tau * cosine_map(phi, self.conv_seg.weight)
        return dot_logits(phi, self.conv_seg.weight)

    def cls_seg(self, feat: Tensor) -> NALOutput:
        """Dropout (if any), classify; return logits together with phi."""
        if self.dropout is not None:
            feat = self.dropout(feat)
        return NALOutput(self.classify(feat), feat)

    def cosine_scores(self,
                      out: NALOutput,
                      size: Sequence[int],
                      upsampled_logits: Optional[Tensor] = None) -> Tensor:
        """cos(phi, W_c) upsampled to ``size`` (bilinear, SPEC §3).

        With the cosine classifier this is ``logits / tau`` (exact, as
        upsampling is linear); ``upsampled_logits`` saves the upsampling.
        """
        logits, phi = split_output(out)
        if self.classifier_type == 'cosine':
            if upsampled_logits is not None:
                return upsampled_logits / self.tau
            cos = logits / self.tau
        else:
            if phi is None:
                raise ValueError('the dot classifier needs phi: pass the '
                                 "head's NALOutput, not bare logits")
            cos = cosine_map(phi, self.conv_seg.weight)
        return resize(
            cos, size=size, mode='bilinear', align_corners=self.align_corners)

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

    def loss_by_feat(self, seg_logits: Union[NALOutput, Tensor],
                     batch_data_samples: List) -> Dict[str, Tensor]:
        """Losses at label resolution; two-map losses get Ycrf, Yret, cos."""
        seg_logits, phi = split_output(seg_logits)
        losses_decode = self.loss_decode if isinstance(
            self.loss_decode, nn.ModuleList) else [self.loss_decode]
        if not any(
                getattr(loss, 'uses_two_maps', False)
                for loss in losses_decode):
            return super().loss_by_feat(seg_logits, batch_data_samples)
        ycrf = self._stack_batch_gt(batch_data_samples).squeeze(1)
        yret = self._stack_ret_gt(batch_data_samples).squeeze(1)
        if yret.shape != ycrf.shape:
            raise ValueError(f'Ycrf {tuple(ycrf.shape)} and Yret '
                             f'{tuple(yret.shape)} batches differ in shape')
        size = ycrf.shape[-2:]
        logits = resize(
            seg_logits,
            size=size,
            mode='bilinear',
            align_corners=self.align_corners)
        # cosine classifier: the loss derives cos = logits / tau per pixel
        cos = None if self.classifier_type == 'cosine' else \
            self.cosine_scores(NALOutput(seg_logits, phi), size)
        losses: Dict[str, Tensor] = {}
        for loss_decode in losses_decode:
            if getattr(loss_decode, 'uses_two_maps', False):
                parts = loss_decode(logits, ycrf, yret, cos=cos, tau=self.tau)
            else:  # a stock mmseg loss, on Ycrf
                parts = {
                    loss_decode.loss_name:
                    loss_decode(logits, ycrf, ignore_index=self.ignore_index)
                }
            for key, value in parts.items():
                losses[key] = losses[key] + value if key in losses else value
        losses['acc_seg'] = pixel_accuracy(logits, ycrf, self.ignore_index)
        return losses

    def predict_by_feat(self, seg_logits: Union[NALOutput, Tensor],
                        batch_img_metas: List[dict]) -> Tensor:
        """Plain logits upsampled to the input (mmseg's contract)."""
        return super().predict_by_feat(
            split_output(seg_logits)[0], batch_img_metas)


def noise_aware_head(base: Type[BaseDecodeHead],
                     name: Optional[str] = None,
                     register: bool = True) -> Type[BaseDecodeHead]:
    """Helper for users: ``NAL<Base>`` = ``base`` + the mixin.

    Registers the class in mmseg's ``MODELS`` (unless ``register=False``).
    Works for any head whose forward ends with ``self.cls_seg(feat)``. The
    heads shipped with bana-mm are written out in
    :mod:`bana_mm.seg.heads.nal_heads` instead.
    """
    name = name or f'NAL{base.__name__}'
    doc = (f'{base.__name__} with the BANA cosine classifier and the '
           f'noise-aware loss (see NoiseAwareHeadMixin).')
    cls = type(name, (NoiseAwareHeadMixin, base), {'__doc__': doc})
    if register:
        MODELS.register_module(module=cls)
    return cls
