"""mmdet-scope adapters: box datasets, the stage-1 BAP classifier, metrics.

Configs load them with
``custom_imports = dict(imports=['bana_mm.det'], allow_failed_imports=False)``.
"""
import bana_mm  # noqa: F401  (checkpoint loading, scope-neutral registrations)

from .bap_classifier import BAPClassifier
from .bap_head import BAPHead
from .datasets import CocoBoxDataset, VOCBoxDataset, read_class_names
from .metrics import BoxClassificationMetric

__all__ = [
    'BAPClassifier', 'BAPHead', 'BoxClassificationMetric', 'CocoBoxDataset',
    'VOCBoxDataset', 'read_class_names'
]
