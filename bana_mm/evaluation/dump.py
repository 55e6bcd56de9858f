"""Predictions dumped to a pickle file, as ``tools/test.py --out X.pkl``
does in mmdet 3.x (an extra metric appended to the runner's
``test_evaluator``)."""
from __future__ import annotations

from typing import Any, Sequence

from mmengine.evaluator import DumpResults
from mmengine.evaluator.metric import _to_cpu

#: Entries of a data sample that are not predictions (ground truth, as
#: mmdet's ``DumpDetResults`` drops them) or dense intermediate maps of tens
#: of MB an image (the BAP feature map; mmseg's per-class logits, whose
#: arg-max ``pred_sem_seg`` is kept).
DROPPED_KEYS = ('gt_instances', 'ignored_instances', 'gt_panoptic_seg',
                'gt_sem_seg', 'feat_map', 'seg_logits')


class DumpPredictions(DumpResults):
    """mmengine's ``DumpResults`` without ground truth and dense maps;
    instance masks become COCO RLEs (as mmdet's ``DumpDetResults``)."""

    def process(self, data_batch: Any, predictions: Sequence[dict]) -> None:
        for sample in _to_cpu(predictions):
            if isinstance(sample, dict):
                for key in DROPPED_KEYS:
                    sample.pop(key, None)
                pred = sample.get('pred_instances')
                if pred is not None and 'masks' in pred:
                    from mmdet.structures.mask import encode_mask_results
                    pred['masks'] = encode_mask_results(pred['masks'].numpy())
            self.results.append(sample)
