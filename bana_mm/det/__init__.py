"""mmdet-scope adapters: box datasets, the stage-1 BAP classifier, metrics,
stage 2 over a dataset (runner, PseudoLabelHook, COCO export) and Mask R-CNN
with the agreement-only mask loss (paper §4.3).

Configs load them with
``custom_imports = dict(imports=['bana_mm.det'], allow_failed_imports=False)``.
"""
import bana_mm  # noqa: F401  (checkpoint loading, scope-neutral registrations)
from .agreement_data import CocoAgreementDataset, LoadAgreementMasks
from .agreement_mask_head import AgreementFCNMaskHead, split_packed_masks
from .bap_classifier import BAPClassifier
from .bap_head import BAPHead
from .coco_metric import NamedCocoMetric
from .datasets import CocoBoxDataset, VOCBoxDataset, read_class_names
from .metrics import BoxClassificationMetric
from .prototype_init_hook import PrototypeInitHook
from .pseudo_label_hook import PseudoLabelHook

__all__ = [
    'AgreementFCNMaskHead', 'BAPClassifier', 'BAPHead',
    'BoxClassificationMetric', 'CocoAgreementDataset', 'CocoBoxDataset',
    'LoadAgreementMasks', 'NamedCocoMetric', 'PrototypeInitHook',
    'PseudoLabelHook', 'VOCBoxDataset', 'read_class_names',
    'split_packed_masks'
]
