"""Scores of stage-2 label maps (paper Tables 1 and 2).

* :class:`SemanticScores` accumulates mmseg's ``IoUMetric`` areas (its own
  ``intersect_and_union`` / ``total_area_to_metrics``) image by image, so a
  whole label folder is scored without holding it in memory.
* :class:`AgreementScores`: the share of pixels in S (Ycrf == Yret) and the
  pixel accuracy of Ycrf on S (paper §3.3, Fig. 4).
* :func:`coco_mask_ap`: pseudo instance masks scored by pycocotools'
  ``COCOeval`` (segm), as in paper Table 2.

Units follow the OpenMMLab metrics: mIoU, IoU, accuracies and the S share
in percent rounded to 2 decimals (mmseg's ``IoUMetric``); COCO AP in [0, 1]
rounded to 3 decimals under mmdet's ``CocoMetric`` names (``mAP``,
``mAP_50``, ...).
"""
from __future__ import annotations

import contextlib
import io
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

IGNORE_INDEX = 255
#: mmdet ``CocoMetric`` item names of ``COCOeval.stats[:6]``.
COCO_AP_NAMES = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def percent(value: Optional[float]) -> Optional[float]:
    """A fraction as percent rounded to 2 decimals (mmseg's ``IoUMetric``);
    None for None / NaN / inf."""
    if value is None:
        return None
    value = float(value)
    return float(np.round(value * 100, 2)) if np.isfinite(value) else None


class SemanticScores:
    """mIoU (and per-class IoU) of label maps against ground truth.

    Classes that appear neither in the ground truth nor in any prediction
    have no IoU (``None``) and are left out of the mean, as in mmseg.
    """

    def __init__(self,
                 class_names: Sequence[str],
                 ignore_index: int = IGNORE_INDEX) -> None:
        self.class_names = tuple(class_names)
        self.ignore_index = ignore_index
        n = len(self.class_names)
        self.areas = [torch.zeros(n, dtype=torch.float64) for _ in range(4)]
        self.images = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image; ``pred`` and ``gt`` are (H, W) class indices."""
        from mmseg.evaluation.metrics import IoUMetric
        if pred.shape != gt.shape:
            raise ValueError(f'prediction {pred.shape} and ground truth '
                             f'{gt.shape} differ in size')
        areas = IoUMetric.intersect_and_union(
            torch.from_numpy(np.asarray(pred, dtype=np.int64)),
            torch.from_numpy(np.asarray(gt, dtype=np.int64)),
            len(self.class_names), self.ignore_index)
        for total, area in zip(self.areas, areas):
            total += area.to(torch.float64)
        self.images += 1

    def results(self) -> Dict[str, object]:
        """``{"miou", "aacc", "per_class": {name: iou}}`` in percent."""
        from mmseg.evaluation.metrics import IoUMetric
        if self.images == 0:
            return dict(miou=None, aacc=None, per_class={}, images=0)
        with np.errstate(invalid='ignore', divide='ignore'):
            metrics = IoUMetric.total_area_to_metrics(
                *self.areas, metrics=['mIoU'])
        iou = np.asarray(metrics['IoU'], dtype=np.float64)
        miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else np.nan
        return dict(
            miou=percent(miou),
            aacc=percent(metrics['aAcc']),
            per_class={
                name: percent(v)
                for name, v in zip(self.class_names, iou)
            },
            images=self.images)


class AgreementScores:
    """S = pixels where Ycrf == Yret (neither ignored), paper §3.3."""

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        self.ignore_index = ignore_index
        self.valid = 0  # pixels with Ycrf != ignore
        self.agree = 0  # |S|
        self.agree_gt = 0  # |S| where the ground truth is not ignored
        self.agree_correct = 0

    def add(self,
            ycrf: np.ndarray,
            yret: np.ndarray,
            gt: Optional[np.ndarray] = None) -> None:
        valid = ycrf != self.ignore_index
        s = valid & (ycrf == yret)
        self.valid += int(valid.sum())
        self.agree += int(s.sum())
        if gt is not None:
            labelled = s & (gt != self.ignore_index)
            self.agree_gt += int(labelled.sum())
            self.agree_correct += int((labelled & (ycrf == gt)).sum())

    def results(self) -> Dict[str, Optional[float]]:
        """``s_share`` = |S| / valid pixels; ``s_accuracy`` = accuracy of
        Ycrf on S (None without ground truth); both in percent."""
        share = self.agree / self.valid if self.valid else None
        acc = self.agree_correct / self.agree_gt if self.agree_gt else None
        return dict(s_share=percent(share), s_accuracy=percent(acc))


def coco_mask_ap(
        gt_json: str,
        annotations: List[dict],
        image_ids: Optional[Sequence[int]] = None
) -> Dict[str, Optional[float]]:
    """Segmentation AP of pseudo instance masks against the COCO ground
    truth in ``gt_json`` (pycocotools, all masks scored 1.0).

    ``annotations``: dicts with ``image_id``, ``category_id`` and an RLE
    ``segmentation``. ``image_ids`` restricts the evaluation (default: the
    images of ``annotations``). Returns ``mAP``, ``mAP_50``, ``mAP_75``,
    ``mAP_s``, ``mAP_m``, ``mAP_l`` in [0, 1], 3 decimals, as mmdet's
    ``CocoMetric`` (None where pycocotools reports -1, e.g. no large
    objects).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    if not annotations:
        return {name: None for name in COCO_AP_NAMES}
    results = [
        dict(
            image_id=a['image_id'],
            category_id=a['category_id'],
            segmentation=a['segmentation'],
            score=1.0) for a in annotations
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_json)
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, iouType='segm')
        evaluator.params.imgIds = sorted(
            set(image_ids)
            if image_ids is not None else {a['image_id']
                                           for a in annotations})
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {
        name: (None if v < 0 else round(float(v), 3))
        for name, v in zip(COCO_AP_NAMES, evaluator.stats[:6])
    }
