"""mmseg-scope adapters of BANA stage 3 (DeepLab with the noise-aware loss).

Import from configs with ``custom_imports=dict(imports=['bana_mm.seg'])``.
Never imports mmdet.
"""
import bana_mm  # noqa: F401  (root registries, checkpoint loading)
from . import mdh  # noqa: F401  (MDH, SPEC §5)
from .data_preprocessor import TwoMapSegDataPreProcessor
from .datasets import PseudoLabelVOCDataset, with_background
from .heads import (DeepLabV1Head, DeepLabV2Head, NALASPPHead,
                    NALDepthwiseSeparableASPPHead, NALFCNHead, NALOutput,
                    NALPSPHead, NoiseAwareHeadMixin, noise_aware_head)
from .hooks import ConfidenceMapHook
from .losses import NoiseAwareLoss
from .segmentors import CRFEncoderDecoder, CRFSegTTAModel
from .transforms import LoadPseudoLabels, PackTwoMapSegInputs, PadSegFields

__all__ = [
    'TwoMapSegDataPreProcessor', 'PseudoLabelVOCDataset', 'with_background',
    'DeepLabV1Head', 'DeepLabV2Head', 'NALASPPHead',
    'NALDepthwiseSeparableASPPHead', 'NALFCNHead', 'NALPSPHead', 'NALOutput',
    'NoiseAwareHeadMixin', 'noise_aware_head', 'ConfidenceMapHook',
    'NoiseAwareLoss', 'CRFEncoderDecoder', 'CRFSegTTAModel',
    'LoadPseudoLabels', 'PackTwoMapSegInputs', 'PadSegFields'
]
