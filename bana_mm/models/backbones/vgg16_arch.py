"""The layer tables of VGG-16 LargeFOV (SPEC §1): names, channels, kernels
and dilations of every conv layer, and the state-dict shapes they give.

Plain data, no torch: both the backbone
(:mod:`~.vgg16_largefov`) and the weight loader (:mod:`~.vgg16_weights`)
import it, so the dependency between those two goes one way (the backbone
uses the loader).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Tuple

#: ``(name, in_channels, out_channels, kernel_size, dilation)`` of every conv
#: layer at width multiplier 1 (SPEC §1). ``fc6``'s dilation is configurable.
VGG16_LARGEFOV_ARCH: Tuple[Tuple[str, int, int, int, int], ...] = (
    ('conv1_1', 3, 64, 3, 1),
    ('conv1_2', 64, 64, 3, 1),
    ('conv2_1', 64, 128, 3, 1),
    ('conv2_2', 128, 128, 3, 1),
    ('conv3_1', 128, 256, 3, 1),
    ('conv3_2', 256, 256, 3, 1),
    ('conv3_3', 256, 256, 3, 1),
    ('conv4_1', 256, 512, 3, 1),
    ('conv4_2', 512, 512, 3, 1),
    ('conv4_3', 512, 512, 3, 1),
    ('conv5_1', 512, 512, 3, 2),
    ('conv5_2', 512, 512, 3, 2),
    ('conv5_3', 512, 512, 3, 2),
    ('fc6', 512, 1024, 3, 1),
    ('fc7', 1024, 1024, 1, 1),
)

#: Conv layers of each of the five VGG blocks (the unit of ``frozen_stages``).
VGG16_STAGES: Tuple[Tuple[str, ...], ...] = (
    ('conv1_1', 'conv1_2'),
    ('conv2_1', 'conv2_2'),
    ('conv3_1', 'conv3_2', 'conv3_3'),
    ('conv4_1', 'conv4_2', 'conv4_3'),
    ('conv5_1', 'conv5_2', 'conv5_3'),
)

#: The 13 VGG-16 conv layers, in forward order.
VGG16_CONV_NAMES: Tuple[str, ...] = tuple(n for s in VGG16_STAGES for n in s)
#: The fully-convolutional layers on top of conv5 (optional in checkpoints).
VGG16_FC_NAMES: Tuple[str, ...] = ('fc6', 'fc7')


def _scale(channels: int, width_mult: float) -> int:
    return max(1, int(channels * width_mult))


def vgg16_largefov_param_shapes(
        width_mult: float = 1.0) -> 'OrderedDict[str, Tuple[int, ...]]':
    """Expected state-dict shapes of
    :class:`~.vgg16_largefov.VGG16LargeFOV` (SPEC §1).

    Args:
        width_mult (float): Channel multiplier, as in the backbone.

    Returns:
        OrderedDict: ``'conv1_1.weight' -> (64, 3, 3, 3)`` etc., in forward
        order, weight before bias.
    """
    shapes: 'OrderedDict[str, Tuple[int, ...]]' = OrderedDict()
    for name, cin, cout, k, _ in VGG16_LARGEFOV_ARCH:
        cin = cin if name == 'conv1_1' else _scale(cin, width_mult)
        cout = _scale(cout, width_mult)
        shapes[f'{name}.weight'] = (cout, cin, k, k)
        shapes[f'{name}.bias'] = (cout, )
    return shapes


__all__ = [
    'VGG16_LARGEFOV_ARCH', 'VGG16_STAGES', 'VGG16_CONV_NAMES',
    'VGG16_FC_NAMES', 'vgg16_largefov_param_shapes'
]
