"""Transforms that carry the second pseudo-label map (Yret) (SPEC §3, §6).

mmseg's ``Resize`` (built by ``RandomResize``), ``RandomCrop`` and
``RandomFlip`` transform every key of ``results['seg_fields']``, so
:class:`LoadPseudoLabels` registers both maps there. The two places that
forget a second map are mmcv's ``Pad`` (only ``gt_seg_map``; use
:class:`PadSegFields`) and mmseg's ``stack_batch`` (only ``gt_sem_seg``; see
:class:`~bana_mm.seg.data_preprocessor.TwoMapSegDataPreProcessor`).
"""
from __future__ import annotations

from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms import Pad as MMCVPad
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS

from ..utils.label_io import IGNORE_INDEX, check_label_map, read_label_png


@TRANSFORMS.register_module()
class LoadPseudoLabels(BaseTransform):
    """Load Ycrf (``seg_map_path``) and Yret (``ret_map_path``).

    Adds ``gt_seg_map`` and ``gt_ret_map`` (uint8, 255 = ignore) to
    ``results`` and to ``seg_fields``. Run it after ``LoadImageFromFile``:
    a map whose size differs from the image raises ``ValueError`` naming the
    file. Without ``ret_map_path`` (a ground-truth dataset) Yret = Ycrf.

    A truncated or non-PNG file, and a value that is neither a class index
    (``< num_classes``) nor 255, raise ``ValueError`` naming the file (and
    the values). ``num_classes`` comes from the dataset
    (``results['num_classes']``, set by ``PseudoLabelVOCDataset``) or from
    the argument; with neither, values are not checked.

    Args:
        backend_args: mmengine file backend arguments.
        num_classes: classes including background, if the dataset does not
            provide it.
    """

    def __init__(self,
                 backend_args: Optional[dict] = None,
                 num_classes: Optional[int] = None) -> None:
        self.num_classes = num_classes
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        paths = dict(
            gt_seg_map=results['seg_map_path'],
            gt_ret_map=results.get('ret_map_path') or results['seg_map_path'])
        img_hw = results['img'].shape[:2] if 'img' in results else None
        label_map = results.get('label_map')
        num_classes = results.get('num_classes', self.num_classes)
        for key, path in paths.items():
            seg = read_label_png(path, self.backend_args)
            check_label_map(
                seg, path, image_hw=img_hw, image_path=results.get('img_path'))
            if label_map:
                mapped = seg.copy()
                for old, new in label_map.items():
                    mapped[seg == old] = new
                seg = mapped
            check_label_map(seg, path, num_classes)
            results[key] = seg
            fields = results.setdefault('seg_fields', [])
            if key not in fields:
                fields.append(key)
        return results


@TRANSFORMS.register_module()
class PadSegFields(MMCVPad):
    """mmcv ``Pad`` that pads every map of ``seg_fields`` (not only
    ``gt_seg_map``) with the ``seg`` pad value (255 by default)."""

    def _pad_seg(self, results: dict) -> None:
        pad_val = self.pad_val.get('seg', IGNORE_INDEX)
        for key in results.get('seg_fields', ['gt_seg_map']):
            if results.get(key) is None:
                continue
            results[key] = mmcv.impad(
                results[key],
                shape=results['pad_shape'][:2],
                pad_val=pad_val,
                padding_mode=self.padding_mode)


@TRANSFORMS.register_module()
class PackTwoMapSegInputs(PackSegInputs):
    """``PackSegInputs`` that also packs ``gt_ret_map`` as ``gt_ret_seg``."""

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        if 'gt_ret_map' in results:
            ret = results['gt_ret_map']
            if 'gt_seg_map' in results and \
                    ret.shape != results['gt_seg_map'].shape:
                raise ValueError(
                    f'{results.get("img_path")}: Yret {ret.shape} and Ycrf '
                    f'{results["gt_seg_map"].shape} are no longer aligned')
            import torch
            packed['data_samples'].gt_ret_seg = PixelData(
                data=torch.from_numpy(ret[None].astype(np.int64)))
        return packed
