"""Registered BAP head: classifier, loss and prediction for a batch (SPEC §1).

The maths is in :mod:`bana_mm.core.bap`; this module loops over the images of
a batch, applies the bias-free (L+1)-way classifier and builds the loss.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from ..core.bap import (DEFAULT_MIN_BACKGROUND_SHARE, background_aware_pool,
                        box_masks_at)


def gt_boxes_of(sample: DetDataSample) -> Tuple[Tensor, Tensor]:
    """(K, 4) boxes and (K,) labels of a data sample's ``gt_instances``."""
    boxes = sample.gt_instances.bboxes
    boxes = getattr(boxes, 'tensor', boxes)
    return boxes.float(), sample.gt_instances.labels.long()


@MODELS.register_module()
class BAPHead(BaseModule):
    """Background-aware pooling head with an (L+1)-way classifier.

    Args:
        in_channels: feature channels D.
        num_classes: number of object classes L (index 0 is background).
        mode: ``'bap'`` (paper) or ``'gap'`` (baseline: A = 0, no background
            queries in the loss).
        grid_size: N of the training query grid (paper: 4).
        test_grid_size: N at prediction time (paper: 1).
        roi_size: bins per box, ``(2, 2)`` like the authors, ``(1, 1)`` like
            the paper text, ``None`` for the exact eq. (4). A bin with no
            pooling weight (e.g. every bin of a box narrower than a feature
            stride, eq. 3 sets A = 1 around it) is a plain average, see
            :func:`~bana_mm.core.bap.weighted_box_pool`.
        min_background_share: GAP fallback threshold of SPEC §1.
        loss_cls: classification loss (mean over all vectors of the batch).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        mode: str = 'bap',
        grid_size: int = 4,
        test_grid_size: int = 1,
        roi_size: Optional[Sequence[int]] = (2, 2),
        min_background_share: float = DEFAULT_MIN_BACKGROUND_SHARE,
        loss_cls: dict = dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        init_cfg: Optional[dict] = dict(
            type='Normal', std=0.01, layer='Conv2d')
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if mode not in ('bap', 'gap'):
            raise ValueError(f"mode must be 'bap' or 'gap', got {mode!r}")
        self.num_classes = num_classes
        self.mode = mode
        self.grid_size = grid_size
        self.test_grid_size = test_grid_size
        self.roi_size = tuple(roi_size) if roi_size is not None else None
        self.min_background_share = min_background_share
        self.classifier = nn.Conv2d(
            in_channels, num_classes + 1, 1, bias=False)
        self.loss_cls = MODELS.build(loss_cls)

    @property
    def class_weights(self) -> Tensor:
        """(L+1, D) classifier weights w_c (row 0: background)."""
        return self.classifier.weight.flatten(1)

    @torch.no_grad()
    def set_class_rows(self, rows: Tensor) -> int:
        """Copy the finite rows of ``rows`` (L+1, D) into the classifier
        (e.g. :func:`~bana_mm.core.bap.prototype_classifier_rows`); NaN rows
        keep their weights. Returns how many rows were set."""
        weight = self.classifier.weight
        if rows.shape != weight.shape[:2]:
            raise ValueError(f'rows must be {tuple(weight.shape[:2])}, got '
                             f'{tuple(rows.shape)}')
        keep = torch.isfinite(rows).all(dim=1)
        weight[keep] = rows[keep].to(weight)[..., None, None]
        return int(keep.sum())

    def classify(self, vectors: Tensor) -> Tensor:
        """Logits of (..., D) vectors."""
        return vectors @ self.class_weights.t()

    def pool(self, feats: Tensor, data_samples: List[DetDataSample],
             grid_size: int) -> List[dict]:
        """Run BAP on each image of the batch (``background_aware_pool``)."""
        input_hw = tuple(data_samples[0].batch_input_shape)
        results = []
        for feat, sample in zip(feats, data_samples):
            boxes, _ = gt_boxes_of(sample)
            img_h, img_w = sample.img_shape[:2]
            valid = box_masks_at(
                boxes.new_tensor([[0, 0, img_w, img_h]]), input_hw,
                feat.shape[1:])[0]
            results.append(
                background_aware_pool(
                    feat,
                    boxes.to(feat.device),
                    input_hw,
                    valid=valid,
                    grid_size=grid_size,
                    roi_size=self.roi_size,
                    use_attention=self.mode == 'bap',
                    min_background_share=self.min_background_share))
        return results

    @staticmethod
    def training_vectors(
            pooled: List[dict],
            data_samples: List[DetDataSample]) -> Tuple[Tensor, Tensor]:
        """All pooled vectors of a batch and their targets: each box bin
        its class ``c_i + 1``, each background query 0."""
        vectors, targets = [], []
        for result, sample in zip(pooled, data_samples):
            _, labels = gt_boxes_of(sample)
            box_feats = result['box_feats']  # (K, bins, D)
            vectors.append(box_feats.flatten(0, 1))
            targets.append((labels.to(box_feats.device) + 1).repeat_interleave(
                box_feats.shape[1]))
            vectors.append(result['queries'])
            targets.append(
                labels.new_zeros(
                    result['queries'].shape[0], device=box_feats.device))
        return torch.cat(vectors), torch.cat(targets)

    def loss(self, feats: Tensor, data_samples: List[DetDataSample]) -> dict:
        """Cross-entropy over all foreground vectors (target c_i + 1) and all
        valid background queries (target 0) of the batch."""
        pooled = self.pool(feats, data_samples, self.grid_size)
        vectors, targets = self.training_vectors(pooled, data_samples)
        if vectors.shape[0] == 0:
            zero = feats.sum() * 0.0
            return dict(loss_cls=zero, acc_fg=zero.detach())
        logits = self.classify(vectors)
        loss = self.loss_cls(logits, targets)
        fg = targets > 0
        # percent, as mmdet / mmseg heads log their accuracies
        acc = (logits[fg].argmax(dim=1) == targets[fg]).float().mean() * 100 \
            if fg.any() else logits.new_zeros(())
        fallbacks = sum(r['fallback'] for r in pooled)
        return dict(
            loss_cls=loss,
            acc_fg=acc.detach(),
            fallback_share=logits.new_tensor(fallbacks / len(pooled)))

    def predict(self, feats: Tensor,
                data_samples: List[DetDataSample]) -> List[DetDataSample]:
        """Classify each ground-truth box and attach what stage 2 needs.

        Each sample gets ``pred_instances`` (the gt boxes with ``scores``
        (K, L+1) softmax of the bin-averaged logits and ``labels`` (K,)
        argmax class index in 0..L-1 or -1 for background), ``feat_map``
        (D, h, w) and ``bg_attention`` (h, w) computed with
        ``test_grid_size`` queries.
        """
        pooled = self.pool(feats, data_samples, self.test_grid_size)
        for feat, result, sample in zip(feats, pooled, data_samples):
            boxes, _ = gt_boxes_of(sample)
            logits = self.classify(result['box_feats']).mean(dim=1)
            scores = logits.softmax(dim=-1)
            instances = InstanceData()
            instances.bboxes = boxes
            instances.scores = scores
            instances.labels = scores.argmax(dim=-1) - 1
            sample.pred_instances = instances
            sample.feat_map = feat
            sample.bg_attention = result['attention']
        return data_samples
