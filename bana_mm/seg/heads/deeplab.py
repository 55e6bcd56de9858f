"""DeepLab-V1 / V2 heads of stage 3 (SPEC §3); neither exists in mmseg."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.model import normal_init
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor

from .noise_aware import NALOutput, NoiseAwareHeadMixin


@MODELS.register_module()
class DeepLabV1Head(NoiseAwareHeadMixin, BaseDecodeHead):
    """DeepLab-V1 LargeFOV classifier on fc7 (SPEC §3).

    The backbone (:class:`~bana_mm.models.VGG16LargeFOV`, fc6 dilation 12)
    already ends with fc7 + ReLU + dropout, so phi = fc7 and the head is the
    classifier alone. ``channels`` defaults to ``in_channels``.
    """

    def __init__(self,
                 in_channels: int,
                 channels: Optional[int] = None,
                 dropout_ratio: float = 0.0,
                 **kwargs) -> None:
        channels = in_channels if channels is None else channels
        if channels != in_channels:
            raise ValueError('DeepLabV1Head classifies fc7 directly: '
                             f'channels ({channels}) must equal in_channels '
                             f'({in_channels})')
        super().__init__(
            in_channels=in_channels,
            channels=channels,
            dropout_ratio=dropout_ratio,
            **kwargs)

    def forward(self, inputs: Tuple[Tensor]) -> NALOutput:
        return self.cls_seg(self._transform_inputs(inputs))


@MODELS.register_module()
class DeepLabV2Head(NoiseAwareHeadMixin, BaseDecodeHead):
    """DeepLab-V2 head: sum of four dilated 3x3 convs, ReLU, classifier.

    ``c1..c4``: in_channels -> channels (256), dilations 6, 12, 18, 24, no
    bias (SPEC §3, §7 names); phi = ReLU(sum).
    """

    def __init__(self,
                 in_channels: int = 2048,
                 channels: int = 256,
                 dilations: Sequence[int] = (6, 12, 18, 24),
                 dropout_ratio: float = 0.0,
                 **kwargs) -> None:
        super().__init__(
            in_channels=in_channels,
            channels=channels,
            dropout_ratio=dropout_ratio,
            **kwargs)
        if len(dilations) < 1:
            raise ValueError('DeepLabV2Head needs at least one dilation')
        self.dilations = tuple(int(d) for d in dilations)
        for i, d in enumerate(self.dilations, start=1):
            conv = nn.Conv2d(
                self.in_channels,
                self.channels,
                3,
                padding=d,
                dilation=d,
                bias=False)
            normal_init(conv, mean=0, std=0.01)
            self.add_module(f'c{i}', conv)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, inputs: Tuple[Tensor]) -> NALOutput:
        x = self._transform_inputs(inputs)
        feat = sum(
            getattr(self, f'c{i}')(x) for i in range(1,
                                                     len(self.dilations) + 1))
        return self.cls_seg(self.relu(feat))
