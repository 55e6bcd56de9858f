"""Stage-1 evaluation: how well the BAP classifier names the boxes."""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric


@METRICS.register_module()
class BoxClassificationMetric(BaseMetric):
    """Accuracy of the (L+1)-way classifier on ground-truth boxes.

    A box counts as correct when the arg-max over all L+1 classes is its class
    (predicting background is an error). Reports overall accuracy and the mean
    of the per-class accuracies over the classes present, in percent rounded
    to 2 decimals (as mmseg's ``IoUMetric`` reports accuracies).
    """

    default_prefix: Optional[str] = 'box_cls'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            gt = np.asarray(sample['gt_instances']['labels'].cpu())
            pred = np.asarray(sample['pred_instances']['labels'].cpu())
            self.results.append((gt, pred))

    def compute_metrics(self, results: list) -> dict:
        if not results:
            return OrderedDict(accuracy=0.0, mean_class_accuracy=0.0)
        gt = np.concatenate([r[0] for r in results])
        pred = np.concatenate([r[1] for r in results])
        if gt.size == 0:
            return OrderedDict(accuracy=0.0, mean_class_accuracy=0.0)
        per_class = [float((pred[gt == c] == c).mean()) for c in np.unique(gt)]
        return OrderedDict(
            accuracy=round(float((pred == gt).mean()) * 100, 2),
            mean_class_accuracy=round(float(np.mean(per_class)) * 100, 2))
