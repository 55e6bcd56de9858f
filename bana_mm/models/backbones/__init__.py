"""Scope-neutral backbones (registered in mmengine's root ``MODELS``)."""
from .vgg16_largefov import VGG16LargeFOV
from .vgg16_weights import load_vgg16_weights

__all__ = ['VGG16LargeFOV', 'load_vgg16_weights']
