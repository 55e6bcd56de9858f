"""Decode heads of stage 3: the mixin, NAL versions of stock mmseg heads,
DeepLab-V1/V2."""
from .deeplab import DeepLabV1Head, DeepLabV2Head
from .nal_heads import (NALASPPHead, NALDepthwiseSeparableASPPHead, NALFCNHead,
                        NALPSPHead)
from .noise_aware import (CLASSIFIER_TYPES, NALOutput, NoiseAwareHeadMixin,
                          noise_aware_head, split_output)

__all__ = [
    'NoiseAwareHeadMixin', 'NALOutput', 'split_output', 'noise_aware_head',
    'NALASPPHead', 'NALDepthwiseSeparableASPPHead', 'NALFCNHead', 'NALPSPHead',
    'DeepLabV1Head', 'DeepLabV2Head', 'CLASSIFIER_TYPES'
]
