"""MDH ("Mixed-dual-head Meets Box Priors", SPEC §5) in mmseg's scope.

Box priors (§3.2) as a transform + 5-channel data preprocessor, the F/W
dataset with boxes, the F:W batch sampler and mixed-dual-head decode heads
(§3.3). Loaded by ``import bana_mm.seg``.
"""
from .data_preprocessor import MultiChannelSegDataPreProcessor
from .dataset import MDHVOCDataset, read_voc_boxes
from .heads import (HEAD_MODES, MDHASPPHead, MDHDepthwiseSeparableASPPHead,
                    MDHFCNHead, MDHPSPHead, MixedDualHeadMixin,
                    strong_state_dict)
from .init import PretrainedExtraChannels, widen_input_channels
from .sampler import MixedBatchSampler
from .transforms import (MDH_META_KEYS, AddBoxPriors, BoxRandomCrop,
                         LoadOptionalAnnotations)

__all__ = [
    'MultiChannelSegDataPreProcessor', 'MDHVOCDataset', 'read_voc_boxes',
    'HEAD_MODES', 'MDHASPPHead', 'MDHDepthwiseSeparableASPPHead', 'MDHFCNHead',
    'MDHPSPHead', 'MixedDualHeadMixin', 'strong_state_dict',
    'PretrainedExtraChannels', 'widen_input_channels', 'MixedBatchSampler',
    'MDH_META_KEYS', 'AddBoxPriors', 'BoxRandomCrop', 'LoadOptionalAnnotations'
]
