"""Test-time DenseCRF post-processing as config-selectable segmentors.

``CRFEncoderDecoder`` is mmseg's ``EncoderDecoder`` plus an optional DenseCRF
on the softmax of its (original-size) output and the real RGB image read from
``img_path`` (SPEC §3, paper §4.1). It is switched by the config::

    model = dict(type='CRFEncoderDecoder',
                 test_cfg=dict(mode='whole', crf=dict(enabled=True, ...)))

or on the command line with ``--cfg-options model.test_cfg.crf.enabled=True``.
``CRFSegTTAModel`` does the same after mmseg's multi-scale + flip merge (keep
the inner model's CRF disabled then).
"""
from __future__ import annotations

from typing import List, Optional

import mmcv
import torch
from mmengine.fileio import get
from mmengine.structures import PixelData
from torch import Tensor

from mmseg.models.segmentors import EncoderDecoder, SegTTAModel
from mmseg.registry import MODELS

from ..core.crf_postprocess import CRF_DEEPLAB_V1, crf_refine_logits


def crf_settings(cfg: Optional[dict]) -> Optional[dict]:
    """Keyword arguments of :func:`crf_refine_logits`, or None if disabled."""
    if not cfg or not cfg.get('enabled', True):
        return None
    unknown = set(cfg) - {'enabled', 'gaussian', 'bilateral', 'iterations',
                          'prob_clip'}
    if unknown:
        raise ValueError(f'unknown CRF settings {sorted(unknown)}')
    return dict(gaussian=dict(cfg.get('gaussian') or
                              CRF_DEEPLAB_V1['gaussian']),
                bilateral=dict(cfg.get('bilateral') or
                               CRF_DEEPLAB_V1['bilateral']),
                iterations=int(cfg.get('iterations', 10)),
                prob_clip=float(cfg.get('prob_clip', 1e-5)))


def read_rgb(img_path: str) -> 'mmcv.np.ndarray':
    """The image file as (H, W, 3) RGB uint8."""
    return mmcv.imfrombytes(get(img_path), flag='color', channel_order='rgb')


def crf_predict(logits: Tensor, img_path: str, settings: dict) -> Tensor:
    """(1, H, W) CRF label map from (C, H, W) logits of image ``img_path``.

    Raises ``ValueError`` naming the image when sizes disagree.
    """
    image = read_rgb(img_path)
    if image.shape[:2] != tuple(logits.shape[-2:]):
        raise ValueError(f'{img_path} is {image.shape[:2]} but the '
                         f'prediction is {tuple(logits.shape[-2:])}; the CRF '
                         'needs the prediction at the original image size')
    marginals = crf_refine_logits(image, logits, **settings)
    return marginals.argmax(dim=0, keepdim=True)


@MODELS.register_module()
class CRFEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` with optional DenseCRF post-processing
    (``test_cfg.crf``: ``enabled``, ``gaussian`` (sxy, compat),
    ``bilateral`` (sxy, srgb, compat), ``iterations``)."""

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: Optional[List] = None) -> List:
        data_samples = super().postprocess_result(seg_logits, data_samples)
        settings = crf_settings(self.test_cfg.get('crf')
                                if self.test_cfg else None)
        if settings is None:
            return data_samples
        if self.out_channels == 1:
            raise ValueError('CRF post-processing needs a multi-class head')
        for sample in data_samples:
            pred = crf_predict(sample.seg_logits.data, sample.img_path,
                               settings)
            sample.set_data({'pred_sem_seg': PixelData(data=pred)})
        return data_samples


@MODELS.register_module()
class CRFSegTTAModel(SegTTAModel):
    """mmseg's multi-scale + flip TTA, then optional DenseCRF on the mean
    softmax (``crf`` as in :class:`CRFEncoderDecoder`)."""

    def __init__(self, crf: Optional[dict] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crf = crf_settings(crf)

    def merge_preds(self, data_samples_list: List[List]) -> List:
        merged = super().merge_preds(data_samples_list)
        if self.crf is None:
            return merged
        for sample, views in zip(merged, data_samples_list):
            probs = torch.stack([v.seg_logits.data.softmax(dim=0)
                                 for v in views]).mean(dim=0)
            # log of the mean softmax: crf_refine_logits' softmax recovers it
            pred = crf_predict(probs.clamp_min(1e-12).log(),
                               views[0].img_path, self.crf)
            sample.set_data({'pred_sem_seg': PixelData(data=pred)})
        return merged
