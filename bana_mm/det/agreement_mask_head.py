"""Mask R-CNN mask head with the agreement-only loss (paper §4.3, SPEC §4).

``AgreementFCNMaskHead`` is mmdet's ``FCNMaskHead`` whose ground-truth masks
are packed pairs ``Ycrf + 2 * Yret`` (see :mod:`bana_mm.core.agreement` and
``LoadAgreementMasks``). Each source is cropped to the positive RoIs with
mmdet's own ``mask_target`` and the BCE is averaged over the RoI pixels where
the two targets agree. With ``packed=False`` (plain 0/1 masks) or with a pair
made of one source twice, it is exactly mmdet's Mask R-CNN mask loss.
Inference is unchanged.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures.mask import BitmapMasks, mask_target
from mmdet.utils import ConfigType, InstanceList
from torch import Tensor

from ..core.agreement import agreement_mask_loss, unpack_mask_pair


def split_packed_masks(masks: BitmapMasks) -> Tuple[BitmapMasks, BitmapMasks]:
    """Unpack a ``BitmapMasks`` of ``Ycrf + 2 * Yret`` into two masks."""
    if not isinstance(masks, BitmapMasks):
        raise TypeError('packed mask pairs must be BitmapMasks (load them '
                        'with LoadAgreementMasks), got '
                        f'{type(masks).__name__}')
    ycrf, yret = unpack_mask_pair(masks.masks)
    return (BitmapMasks(ycrf, masks.height, masks.width),
            BitmapMasks(yret, masks.height, masks.width))


@MODELS.register_module()
class AgreementFCNMaskHead(FCNMaskHead):
    """``FCNMaskHead`` trained only where Ycrf and Yret agree.

    Args:
        packed: ``gt_instances.masks`` hold packed pairs (values 0..3). If
            False they are plain binary masks used as both sources, i.e.
            ordinary Mask R-CNN.
        loss_mask: must be mmdet's ``CrossEntropyLoss`` with ``use_mask=True``
            (its ``loss_weight`` scales the agreement loss).
        **kwargs: ``FCNMaskHead`` arguments.
    """

    def __init__(self,
                 packed: bool = True,
                 loss_mask: ConfigType = dict(
                     type='CrossEntropyLoss', use_mask=True, loss_weight=1.0),
                 **kwargs) -> None:
        loss_type = loss_mask.get('type')
        if loss_type not in ('CrossEntropyLoss', 'mmdet.CrossEntropyLoss') \
                or not loss_mask.get('use_mask', False):
            raise ValueError('AgreementFCNMaskHead computes a binary mask '
                             'cross-entropy; loss_mask must be '
                             "dict(type='CrossEntropyLoss', use_mask=True, "
                             f'loss_weight=...), got {loss_mask}')
        super().__init__(loss_mask=loss_mask, **kwargs)
        self.packed = packed

    def get_targets(self, sampling_results: List[SamplingResult],
                    batch_gt_instances: InstanceList,
                    rcnn_train_cfg: ConfigType) -> Tuple[Tensor, Tensor]:
        """(Ycrf targets, Yret targets) of the positive RoIs, each
        (num_pos, mask_h, mask_w), cropped like mmdet's ``mask_target``."""
        pos_priors = [res.pos_priors for res in sampling_results]
        pos_inds = [res.pos_assigned_gt_inds for res in sampling_results]
        if self.packed:
            pairs = [split_packed_masks(gt.masks) for gt in batch_gt_instances]
        else:
            pairs = [(gt.masks, gt.masks) for gt in batch_gt_instances]
        targets = []
        for source in (0, 1):
            masks = [pair[source] for pair in pairs]
            target = mask_target(pos_priors, pos_inds, masks, rcnn_train_cfg)
            if not isinstance(target, Tensor):  # no image in the batch
                target = pos_priors[0].new_zeros((0, 1, 1)) if pos_priors \
                    else torch.zeros((0, 1, 1))
            targets.append(target)
        return targets[0], targets[1]

    def loss_and_target(self, mask_preds: Tensor,
                        sampling_results: List[SamplingResult],
                        batch_gt_instances: InstanceList,
                        rcnn_train_cfg: ConfigType) -> dict:
        """Agreement-only mask loss, plus ``mask_agreement`` (share of the
        RoI target pixels where the two masks agree, logged only);
        ``mask_targets`` are the Ycrf ones."""
        ycrf, yret = self.get_targets(sampling_results, batch_gt_instances,
                                      rcnn_train_cfg)
        # logged, not summed into the loss (no 'loss' in the key)
        agreement = ((ycrf > 0.5) == (yret > 0.5)).float().mean() \
            if ycrf.numel() else mask_preds.new_tensor(1.0)
        if mask_preds.size(0) == 0:
            loss_mask = mask_preds.sum()
        else:
            labels = torch.cat([res.pos_gt_labels for res in sampling_results])
            if self.class_agnostic:
                labels = torch.zeros_like(labels)
            rois = torch.arange(mask_preds.size(0), device=mask_preds.device)
            logits = mask_preds[rois, labels.long()]
            loss_mask = agreement_mask_loss(
                logits, ycrf, yret, loss_weight=self.loss_mask.loss_weight)
        return dict(
            loss_mask=dict(
                loss_mask=loss_mask, mask_agreement=agreement.detach()),
            mask_targets=ycrf)
