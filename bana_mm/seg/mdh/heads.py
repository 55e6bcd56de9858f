"""Mixed-dual-head prediction heads for any mmseg decode head (MDH §3.3).

:class:`MixedDualHeadMixin` replaces the head's last prediction conv
(``conv_seg``) by two identical heads, each ``1x1 conv + BN + ReLU`` then a
``1x1`` prediction conv (§4.2), on the head's shared feature (everything the
mmseg head computes before ``cls_seg``):

* ``strong`` - ``strong_pre`` + ``conv_seg`` (keeps mmseg's name and init);
  the only head used at inference, so ``predict`` is mmseg's;
* ``weak`` - ``weak_pre`` + ``weak_seg``, training only.

``head_mode`` (paper Fig. 5):

* ``'mixed'`` (c): weak head on every W sample; strong head on every F
  sample plus W samples at F:W = ``mix_ratio`` (default 7:1): of the batch's
  W samples the first ``n_F * b / a`` (stochastically rounded, so the ratio
  is exact in expectation) also go to the strong head;
* ``'dual'`` (b): strong head on F only, weak head on W only;
* ``'single'`` (a): one head (no weak head) on all samples.

Samples are routed by their ``is_full`` metainfo (see ``MDH_META_KEYS``);
each head runs (and batch-normalises) only the samples it is trained on.
Each head's loss is mmseg's ``loss_by_feat`` over its own samples; the two
losses are summed with equal weight (the paper gives none).
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import normal_init
from mmseg.models.decode_heads import (ASPPHead, DepthwiseSeparableASPPHead,
                                       FCNHead, PSPHead)
from mmseg.registry import MODELS
from torch import Tensor

from .sampler import check_ratio

HEAD_MODES = ('mixed', 'dual', 'single')


class MixedDualHeadMixin:
    """Strong/weak prediction heads and per-sample routing of the loss.

    Put it first in the bases: ``class H(MixedDualHeadMixin, FCNHead)``.

    Args:
        head_mode: ``'mixed'`` (default), ``'dual'`` or ``'single'``.
        mix_ratio: F:W ratio in the strong head's samples (mixed mode).
    """

    def __init__(self,
                 *args,
                 head_mode: str = 'mixed',
                 mix_ratio: Sequence[float] = (7, 1),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if head_mode not in HEAD_MODES:
            raise ValueError(f'head_mode must be one of {HEAD_MODES}, got '
                             f'{head_mode!r}')
        self.head_mode = head_mode
        self.mix_ratio = check_ratio(mix_ratio, 'mix_ratio')
        self.strong_pre = self._pre_block()
        self.conv_seg = nn.Conv2d(self.channels, self.out_channels, 1)
        if head_mode == 'single':
            self.weak_pre, self.weak_seg = None, None
        else:
            self.weak_pre = self._pre_block()
            self.weak_seg = nn.Conv2d(self.channels, self.out_channels, 1)
        self._route: Tuple[List[int], List[int]] | None = None

    def _pre_block(self) -> ConvModule:
        return ConvModule(
            self.channels,
            self.channels,
            1,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg or dict(type='BN'),
            act_cfg=self.act_cfg or dict(type='ReLU'))

    def init_weights(self) -> None:
        super().init_weights()
        for conv in (self.conv_seg, self.weak_seg):
            if conv is not None:
                normal_init(conv, mean=0, std=0.01)

    def cls_seg(self, feat: Tensor):
        """Strong logits; inside ``loss`` a pair (strong logits of the strong
        samples, weak logits of the weak samples), each head normalising
        (BN) only the samples it is trained on."""
        if self.dropout is not None:
            feat = self.dropout(feat)
        if self._route is None:
            return self.conv_seg(self.strong_pre(feat))
        outs = []
        for index, pre, seg in ((self._route[0], self.strong_pre,
                                 self.conv_seg),
                                (self._route[1], self.weak_pre,
                                 self.weak_seg)):
            if not index or pre is None:
                outs.append(None)
                continue
            sel = torch.as_tensor(index, device=feat.device)
            outs.append(seg(pre(feat.index_select(0, sel))))
        return tuple(outs)

    # -------------------------------------------------------------- routing
    def route(self, is_full: Sequence[bool]) -> Tuple[List[int], List[int]]:
        """Batch indices seen by the strong and by the weak head."""
        full = [i for i, f in enumerate(is_full) if f]
        weak = [i for i, f in enumerate(is_full) if not f]
        if self.head_mode == 'single':
            return list(range(len(is_full))), []
        if self.head_mode == 'dual':
            return full, weak
        a, b = self.mix_ratio
        want = len(full) * b / a
        n_mix = int(want) + int(torch.rand(()).item() < want - int(want))
        return sorted(full + weak[:min(n_mix, len(weak))]), weak

    def _head_loss(self, logits: Tensor | None, samples, index: List[int],
                   modules: Sequence[nn.Module],
                   suffix: str) -> Dict[str, Tensor]:
        """mmseg losses of one head over its samples, keys ``<name>_<head>``.
        A head without samples gets zero losses that still touch its
        parameters (zero gradient, no unused parameters)."""
        if logits is None:
            zero = sum(p.sum() for m in modules for p in m.parameters()) * 0.0
            names = [
                m.loss_name for m in (self.loss_decode if isinstance(
                    self.loss_decode, nn.ModuleList) else [self.loss_decode])
            ]
            out = {f'{n}_{suffix}': zero for n in names}
            out[f'acc_seg_{suffix}'] = zero.detach()
            return out
        losses = self.loss_by_feat(logits, [samples[i] for i in index])
        return {f'{k}_{suffix}': v for k, v in losses.items()}

    def loss(self, inputs: Tuple[Tensor], batch_data_samples,
             train_cfg) -> Dict[str, Tensor]:
        if self.head_mode == 'single':
            return self.loss_by_feat(self.forward(inputs), batch_data_samples)
        tags = [s.metainfo.get('is_full') for s in batch_data_samples]
        if any(t is None for t in tags):
            raise KeyError(f'{self.head_mode}-head training needs an '
                           "'is_full' tag in every sample's metainfo "
                           '(MDHVOCDataset + PackSegInputs(meta_keys='
                           'MDH_META_KEYS))')
        strong_idx, weak_idx = self.route([bool(t) for t in tags])
        self._route = (strong_idx, weak_idx)
        try:
            strong, weak = self.forward(inputs)
        finally:
            self._route = None
        losses = self._head_loss(strong, batch_data_samples, strong_idx,
                                 (self.strong_pre, self.conv_seg), 'strong')
        losses.update(
            self._head_loss(weak, batch_data_samples, weak_idx,
                            (self.weak_pre, self.weak_seg), 'weak'))
        return losses


def strong_state_dict(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The inference model's weights: everything but the weak head. Loads
    strictly into the same config with ``head_mode='single'``."""
    return {
        k: v
        for k, v in state_dict.items()
        if '.weak_pre.' not in k and '.weak_seg.' not in k
    }


@MODELS.register_module()
class MDHFCNHead(MixedDualHeadMixin, FCNHead):
    """mmseg's FCNHead (HRNetV2 AnnNet) with strong/weak heads."""


@MODELS.register_module()
class MDHASPPHead(MixedDualHeadMixin, ASPPHead):
    """mmseg's ASPPHead (DeepLab-V3) with strong/weak heads."""


@MODELS.register_module()
class MDHDepthwiseSeparableASPPHead(MixedDualHeadMixin,
                                    DepthwiseSeparableASPPHead):
    """mmseg's DeepLab-V3+ head (SegNet) with strong/weak heads."""


@MODELS.register_module()
class MDHPSPHead(MixedDualHeadMixin, PSPHead):
    """mmseg's PSPHead with strong/weak heads."""
