"""Stage-3 segmentors: test-time DenseCRF and the authors' multi-scale + flip.

``CRFEncoderDecoder`` is mmseg's ``EncoderDecoder`` plus an optional DenseCRF
on the softmax of its (original-size) output and the real RGB image read from
``img_path`` (SPEC §3, paper §4.1). It is switched by the config::

    model = dict(type='CRFEncoderDecoder',
                 test_cfg=dict(mode='whole', crf=dict(enabled=True, ...)))

or on the command line with ``--cfg-options model.test_cfg.crf.enabled=True``.
Its heads upsample with ``align_corners=True`` unless their config says
otherwise (feature cell i at input pixel 8i, as the authors; SPEC §2).

``CRFSegTTAModel`` merges mmseg's multi-scale + flip views as the authors do:
the mean of the views' LOGITS, then softmax (mmseg's ``SegTTAModel`` averages
probabilities), then the optional DenseCRF once on the merged map (keep the
inner model's CRF disabled then).
"""
from __future__ import annotations

from typing import List, Optional

import mmcv
import torch
from mmengine.fileio import get
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder, SegTTAModel
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from ..core.crf_postprocess import CRF_DEEPLAB_V1, crf_refine_logits
from .heads import split_output


def crf_settings(cfg: Optional[dict]) -> Optional[dict]:
    """Keyword arguments of :func:`crf_refine_logits`, or None if disabled."""
    if not cfg or not cfg.get('enabled', True):
        return None
    unknown = set(cfg) - {
        'enabled', 'gaussian', 'bilateral', 'iterations', 'prob_clip'
    }
    if unknown:
        raise ValueError(f'unknown CRF settings {sorted(unknown)}')
    return dict(
        gaussian=dict(cfg.get('gaussian') or CRF_DEEPLAB_V1['gaussian']),
        bilateral=dict(cfg.get('bilateral') or CRF_DEEPLAB_V1['bilateral']),
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


def with_align_corners(head_cfg, default: bool = True):
    """A copy of a head config (or list of them) with ``align_corners``
    set to ``default`` where the config does not set it."""
    if head_cfg is None:
        return None
    if isinstance(head_cfg, (list, tuple)):
        return [with_align_corners(h, default) for h in head_cfg]
    head_cfg = dict(head_cfg)
    head_cfg.setdefault('align_corners', default)
    return head_cfg


@MODELS.register_module()
class CRFEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` with optional DenseCRF post-processing
    (``test_cfg.crf``: ``enabled``, ``gaussian`` (sxy, compat),
    ``bilateral`` (sxy, srgb, compat), ``iterations``).

    The heads default to ``align_corners=True`` (SPEC §2), which the
    segmentor also uses to resize its output to the original image.
    """

    def __init__(self,
                 decode_head: dict,
                 auxiliary_head: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(
            decode_head=with_align_corners(decode_head),
            auxiliary_head=with_align_corners(auxiliary_head),
            **kwargs)

    def _forward(self,
                 inputs: Tensor,
                 data_samples: Optional[List] = None) -> Tensor:
        """Plain (B, C, h, w) logits (``mode='tensor'``, export): phi of a
        noise-aware head is dropped."""
        return split_output(super()._forward(inputs, data_samples))[0]

    def postprocess_result(self,
                           seg_logits: Tensor,
                           data_samples: Optional[List] = None) -> List:
        data_samples = super().postprocess_result(seg_logits, data_samples)
        settings = crf_settings(
            self.test_cfg.get('crf') if self.test_cfg else None)
        if settings is None:
            return data_samples
        if self.out_channels == 1:
            raise ValueError('CRF post-processing needs a multi-class head')
        for sample in data_samples:
            pred = crf_predict(sample.seg_logits.data, sample.img_path,
                               settings)
            sample.set_data({'pred_sem_seg': PixelData(data=pred)})
        return data_samples


def mean_logits(views: List) -> Tensor:
    """(C, H, W) mean of the views' ``seg_logits`` (already flipped back
    and resized to the original image by the segmentor)."""
    shapes = {tuple(v.seg_logits.data.shape) for v in views}
    if len(shapes) != 1:
        raise ValueError(f'TTA views of {views[0].img_path} differ in shape '
                         f'{sorted(shapes)}; they must be at the original '
                         'size')
    return torch.stack([v.seg_logits.data for v in views]).mean(dim=0)


@MODELS.register_module()
class CRFSegTTAModel(SegTTAModel):
    """Multi-scale + flip as the authors (paper §4.1): average the views'
    logits, softmax, then optional DenseCRF (``crf`` as in
    :class:`CRFEncoderDecoder`) once on the merged map.

    The merged sample carries the mean logits as ``seg_logits``. A binary
    head (one output channel, whose views hold sigmoid probabilities) is
    merged by mmseg's ``SegTTAModel``.
    """

    def __init__(self, crf: Optional[dict] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crf = crf_settings(crf)

    def merge_preds(self, data_samples_list: List[List]) -> List:
        if self.module.out_channels == 1:
            if self.crf is not None:
                raise ValueError('CRF post-processing needs a multi-class '
                                 'head')
            return super().merge_preds(data_samples_list)
        merged = []
        for views in data_samples_list:
            logits = mean_logits(views)
            if self.crf is None:  # softmax is monotone: argmax of the mean
                pred = logits.argmax(dim=0, keepdim=True)
            else:  # crf_refine_logits takes the softmax of the mean logits
                pred = crf_predict(logits, views[0].img_path, self.crf)
            sample = SegDataSample(metainfo=views[0].metainfo)
            sample.set_data({
                'seg_logits': PixelData(data=logits),
                'pred_sem_seg': PixelData(data=pred)
            })
            if 'gt_sem_seg' in views[0]:
                sample.set_data({'gt_sem_seg': views[0].gt_sem_seg})
            merged.append(sample)
        return merged
