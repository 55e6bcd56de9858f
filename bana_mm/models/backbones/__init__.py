"""Scope-neutral backbones (registered in mmengine's root ``MODELS``)."""
from .efficientnet_lite import EfficientNetLite0, lite0_weights_path
from .vgg16_largefov import VGG16LargeFOV
from .vgg16_weights import load_vgg16_weights

__all__ = [
    'EfficientNetLite0', 'VGG16LargeFOV', 'lite0_weights_path',
    'load_vgg16_weights'
]
