"""Transforms of the MDH data path: boxes through augmentation, 5-ch input.

Which mmseg 1.2 transforms move ``gt_bboxes`` (checked in the installed
sources): ``Resize`` / ``RandomResize`` scale and clip them, ``RandomFlip``
flips them, mmcv's ``Pad`` pads bottom/right so they need no change; mmseg's
``RandomCrop`` does NOT crop them, hence :class:`BoxRandomCrop`.
:class:`AddBoxPriors` then computes the priors of §3.2 from the boxes as they
are after geometric augmentation and stacks them behind the image.
"""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.datasets.transforms import LoadAnnotations, RandomCrop
from mmseg.registry import TRANSFORMS

from ...core.priors import class_prior, position_prior

#: PackSegInputs meta keys of the MDH data path (mmseg's + the F/W tag).
MDH_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                 'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                 'reduce_zero_label', 'is_full', 'img_id')


def keep_nonempty_boxes(results: dict) -> None:
    """Drop boxes of zero width/height (e.g. cropped away), with labels."""
    boxes = results.get('gt_bboxes')
    if boxes is None:
        return
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    results['gt_bboxes'] = boxes[keep]
    if results.get('gt_bboxes_labels') is not None:
        results['gt_bboxes_labels'] = np.asarray(
            results['gt_bboxes_labels']).reshape(-1)[keep]


@TRANSFORMS.register_module()
class BoxRandomCrop(RandomCrop):
    """mmseg ``RandomCrop`` that also crops ``gt_bboxes`` (shift + clip to
    the crop; boxes left without area are dropped with their labels)."""

    def crop_bbox(self, results: dict) -> tuple:
        crop = super().crop_bbox(results)
        results['_mdh_crop'] = crop
        return crop

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        y1, y2, x1, x2 = results.pop('_mdh_crop')
        if results.get('gt_bboxes') is not None:
            boxes = np.asarray(results['gt_bboxes'],
                               np.float32).reshape(-1, 4).copy()
            h, w = results['img'].shape[:2]
            boxes[:, 0::2] = np.clip(boxes[:, 0::2] - x1, 0, w)
            boxes[:, 1::2] = np.clip(boxes[:, 1::2] - y1, 0, h)
            results['gt_bboxes'] = boxes
            keep_nonempty_boxes(results)
        return results


@TRANSFORMS.register_module()
class AddBoxPriors(BaseTransform):
    """Append the position prior ``G`` and the class prior (§3.2, eq. 1-2)
    to ``img`` as channels 4 and 5 (float32, raw values: G in [0, 255],
    class indices). Run it last before packing, after every geometric and
    photometric transform of the image.

    Args:
        background_index: class-prior value outside every box.
        keep_priors: also keep ``results['priors']`` (2, H, W) for pictures.
    """

    def __init__(self,
                 background_index: int = 0,
                 keep_priors: bool = False) -> None:
        self.background_index = int(background_index)
        self.keep_priors = keep_priors

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{results.get('img_path')}: AddBoxPriors needs"
                             f' a 3-channel image, got shape {img.shape} '
                             '(applied twice?)')
        keep_nonempty_boxes(results)
        hw = img.shape[:2]
        boxes = results.get('gt_bboxes')
        boxes = np.zeros((0, 4)) if boxes is None else boxes
        labels = results.get('gt_bboxes_labels')
        labels = np.zeros((0, ), np.int64) if labels is None else labels
        pos = position_prior(boxes, hw)
        cls = class_prior(boxes, labels, hw, self.background_index)
        priors = np.stack([pos, cls.astype(np.float32)], axis=2)
        results['img'] = np.concatenate([img.astype(np.float32), priors], 2)
        if self.keep_priors:
            results['priors'] = priors.transpose(2, 0, 1).copy()
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(background_index='
                f'{self.background_index})')


@TRANSFORMS.register_module()
class LoadOptionalAnnotations(LoadAnnotations):
    """mmseg ``LoadAnnotations`` that does nothing when ``seg_map_path`` is
    None (predicting W images that have no ground truth)."""

    def transform(self, results: dict) -> dict:
        if results.get('seg_map_path') is None:
            return results
        return super().transform(results)
