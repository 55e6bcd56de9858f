"""Scope-neutral models, registered in mmengine's root ``MODELS`` registry.

mmdet's and mmseg's registries are children of the root one, so these modules
build under either default scope without importing the other library.
"""
from .backbones import EfficientNetLite0, VGG16LargeFOV

__all__ = ['EfficientNetLite0', 'VGG16LargeFOV']
