"""Scores of pseudo labels against ground truth (mmseg / pycocotools)."""
from .pseudo_label_metrics import (AgreementScores, SemanticScores,
                                   coco_mask_ap)

__all__ = ['SemanticScores', 'AgreementScores', 'coco_mask_ap']
