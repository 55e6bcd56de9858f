"""Scores of pseudo labels against ground truth (mmseg / pycocotools)."""
from .label_files import evaluate_label_files, score_label_dir
from .pseudo_label_metrics import AgreementScores, SemanticScores, coco_mask_ap

__all__ = [
    'SemanticScores', 'AgreementScores', 'coco_mask_ap',
    'evaluate_label_files', 'score_label_dir'
]
