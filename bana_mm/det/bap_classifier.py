"""Stage-1 model: backbone + BAP head, trained with mmengine's Runner."""
from __future__ import annotations

from typing import List, Optional, Tuple

from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from torch import Tensor


@MODELS.register_module()
class BAPClassifier(BaseDetector):
    """Box-supervised classifier with background-aware pooling (paper §3.1).

    ``loss`` returns the BAP cross-entropy; ``predict`` returns data samples
    carrying the box classification, the feature map and the background
    attention (what the stage-2 pseudo-label generator consumes); ``tensor``
    returns the backbone features.

    Args:
        backbone: any backbone whose last output is the feature map f
            (VGG16LargeFOV by default, mmdet/mmseg ResNets work too).
        head: a :class:`~bana_mm.det.BAPHead` config.
        data_preprocessor: mmdet ``DetDataPreprocessor`` config (Caffe-style
            BGR mean subtraction for the VGG backbone).
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)

    def extract_feat(self, batch_inputs: Tensor) -> Tensor:
        """The last feature map of the backbone, (B, D, h, w)."""
        return self.backbone(batch_inputs)[-1]

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: List[DetDataSample]) -> dict:
        return self.head.loss(
            self.extract_feat(batch_inputs), batch_data_samples)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[DetDataSample]:
        return self.head.predict(
            self.extract_feat(batch_inputs), batch_data_samples)

    def _forward(
        self,
        batch_inputs: Tensor,
        batch_data_samples: Optional[List[DetDataSample]] = None
    ) -> Tuple[Tensor]:
        return (self.extract_feat(batch_inputs), )
