"""Stock mmseg decode heads with the BANA classifier and losses.

Each is the mmseg head with :class:`NoiseAwareHeadMixin` first in the
bases: the mmseg forward ends with ``self.cls_seg(feat)``, which the mixin
turns into the cosine classifier returning (logits, phi).
"""
from __future__ import annotations

from mmseg.models.decode_heads import (ASPPHead, DepthwiseSeparableASPPHead,
                                       FCNHead, PSPHead)
from mmseg.registry import MODELS

from .noise_aware import NoiseAwareHeadMixin


@MODELS.register_module()
class NALASPPHead(NoiseAwareHeadMixin, ASPPHead):
    """mmseg's ASPPHead (DeepLab-V3) with the cosine classifier and NAL."""


@MODELS.register_module()
class NALDepthwiseSeparableASPPHead(NoiseAwareHeadMixin,
                                    DepthwiseSeparableASPPHead):
    """mmseg's DepthwiseSeparableASPPHead (DeepLab-V3+) with the cosine
    classifier and NAL."""


@MODELS.register_module()
class NALFCNHead(NoiseAwareHeadMixin, FCNHead):
    """mmseg's FCNHead with the cosine classifier and NAL."""


@MODELS.register_module()
class NALPSPHead(NoiseAwareHeadMixin, PSPHead):
    """mmseg's PSPHead with the cosine classifier and NAL."""
