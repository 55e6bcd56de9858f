"""Two pseudo masks per COCO annotation for the agreement mask loss (SPEC §4).

* ``CocoAgreementDataset`` reads the stage-2 ``instances_ycrf.json`` as its
  ``ann_file`` and the matching ``instances_yret.json`` as ``ret_ann_file``
  (same annotation ids, images, categories and boxes; only the segmentation
  differs). Each instance gets ``mask`` (Ycrf) and ``mask_ret`` (Yret).
  A single json may instead carry both: an annotation with a
  ``segmentation_ret`` field needs no ``ret_ann_file``.
* ``LoadAgreementMasks`` decodes both and stores one ``BitmapMasks`` of
  ``Ycrf + 2 * Yret`` in ``gt_masks``, so mmdet's Resize / RandomFlip /
  RandomCrop / Pad / batching carry the pair exactly (nearest interpolation
  on masks) until ``AgreementFCNMaskHead`` unpacks it. An instance without a
  second mask uses its first one twice (ordinary Mask R-CNN).
"""
from __future__ import annotations

import json
import os.path as osp
from typing import Dict, List, Optional

import numpy as np
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import DATASETS, TRANSFORMS
from mmdet.structures.mask import BitmapMasks
from mmengine.fileio import get_local_path

from ..core.agreement import pack_mask_pair
from ..core.boxes import BoxAnnotationError
from .datasets import CocoBoxDataset

RET_FIELD = 'segmentation_ret'


@DATASETS.register_module()
class CocoAgreementDataset(CocoBoxDataset):
    """COCO boxes with a Ycrf and a Yret pseudo mask per annotation.

    Args:
        ret_ann_file: the Yret COCO json (relative to ``data_root`` unless
            absolute). ``None``: take Yret from each annotation's
            ``segmentation_ret`` field if present, else train on the
            ``ann_file`` masks alone (Ycrf-only / Yret-only baselines).
        **kwargs: ``CocoBoxDataset`` arguments; ``ann_file`` is the Ycrf json.

    Raises:
        FileNotFoundError: a json is missing (named).
        BoxAnnotationError: the two jsons do not describe the same
            annotations (ids, images, categories), naming ``ret_ann_file``.
    """

    def __init__(self,
                 *args,
                 ret_ann_file: Optional[str] = None,
                 **kwargs) -> None:
        self.ret_ann_file = ret_ann_file
        self._ret_anns: Optional[Dict[int, dict]] = None
        self._ret_cats: Optional[Dict[int, str]] = None
        self._pending_ret: Optional[List] = None
        super().__init__(*args, **kwargs)

    def _join_prefix(self) -> None:
        super()._join_prefix()
        if self.ret_ann_file and not osp.isabs(self.ret_ann_file) \
                and self.data_root:
            self.ret_ann_file = osp.join(self.data_root, self.ret_ann_file)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'Ycrf annotation file not found: {self.ann_file}')
        self._ret_anns = self._read_ret_anns() if self.ret_ann_file else None
        data_list = super().load_data_list()
        if self._ret_anns:  # ids of the Yret json never seen in ann_file
            extra = sorted(self._ret_anns)[:5]
            raise BoxAnnotationError(
                f'{self.ret_ann_file}: {len(self._ret_anns)} annotation ids '
                f'are not in {self.ann_file} (e.g. {extra}); the two pseudo '
                'mask files must come from the same stage-2 run')
        self._ret_anns = None
        self._check_ret_categories()
        return data_list

    def _check_ret_categories(self) -> None:
        """Both jsons give each used category id the same name (annotations
        are paired by category id, classes are matched by name)."""
        if self._ret_cats is None:
            return
        classes = self.metainfo['classes']
        for cat_id, label in self.cat2label.items():
            if self._ret_cats.get(cat_id) != classes[label]:
                raise BoxAnnotationError(
                    f'{self.ret_ann_file}: category id {cat_id} is named '
                    f'{self._ret_cats.get(cat_id)!r}, but {classes[label]!r} '
                    f'in {self.ann_file}')
        self._ret_cats = None

    def _read_ret_anns(self) -> Dict[int, dict]:
        if not osp.isfile(self.ret_ann_file):
            raise FileNotFoundError(
                f'Yret annotation file not found: {self.ret_ann_file}')
        try:
            with get_local_path(self.ret_ann_file) as local_path:
                with open(local_path) as f:
                    content = json.load(f)
            anns = {int(a['id']): a for a in content['annotations']}
            self._ret_cats = {int(c['id']): c['name']
                              for c in content.get('categories') or []} \
                or None
        except (ValueError, KeyError, TypeError) as err:
            raise BoxAnnotationError(
                f'{self.ret_ann_file}: malformed COCO annotation file '
                f'({type(err).__name__}: {err})') from err
        return anns

    def parse_data_info(self, raw_data_info: dict) -> dict:
        anns = raw_data_info['raw_ann_info']
        self._pending_ret = [self._ret_segmentation(ann) for ann in anns]
        try:
            info = super().parse_data_info(raw_data_info)
            self._check_rle_sizes(anns, self._pending_ret, info)
            return info
        finally:
            self._pending_ret = None

    def _check_rle_sizes(self, anns: List[dict], rets: list,
                         info: dict) -> None:
        """An RLE mask must have its image's size (as decoded): else an
        error naming the json, the annotation and the image."""
        hw = [int(info['height']), int(info['width'])]
        ret_source = self.ret_ann_file or f'{self.ann_file} ({RET_FIELD})'
        for ann, ret in zip(anns, rets):
            for source, seg in ((self.ann_file, ann.get('segmentation')),
                                (ret_source, ret)):
                if not isinstance(seg, dict) or 'size' not in seg:
                    continue
                if [int(v) for v in seg['size']] != hw:
                    raise BoxAnnotationError(
                        f'{source}: annotation {ann.get("id")} has an RLE '
                        f'mask of size {seg["size"][1]}x{seg["size"][0]} '
                        f'(WxH) but its image {info["img_path"]} is '
                        f'{hw[1]}x{hw[0]}; the masks do not belong to these '
                        'images')

    def _ret_segmentation(self, ann: dict):
        """The Yret segmentation of one Ycrf annotation (None: no second
        source)."""
        if self._ret_anns is None:
            return ann.get(RET_FIELD)
        ret = self._ret_anns.pop(int(ann['id']), None)
        if ret is None:
            raise BoxAnnotationError(
                f'{self.ret_ann_file}: annotation id {ann["id"]} of '
                f'{self.ann_file} is missing; the two pseudo mask files must '
                'come from the same stage-2 run')
        for key in ('image_id', 'category_id'):
            if ret.get(key) != ann.get(key):
                raise BoxAnnotationError(
                    f'{self.ret_ann_file}: annotation {ann["id"]} has {key} '
                    f'{ret.get(key)}, but {ann.get(key)} in {self.ann_file}')
        if not ret.get('segmentation'):
            raise BoxAnnotationError(
                f'{self.ret_ann_file}: annotation {ann["id"]} has no '
                'segmentation')
        return ret['segmentation']

    def _checked_instances(self,
                           boxes,
                           labels,
                           width,
                           height,
                           source,
                           extra=None) -> List[dict]:
        if self._pending_ret is not None and extra is not None:
            for item, seg in zip(extra, self._pending_ret):
                if seg is not None:
                    item['mask_ret'] = seg
        return super()._checked_instances(boxes, labels, width, height, source,
                                          extra)


@TRANSFORMS.register_module()
class LoadAgreementMasks(LoadAnnotations):
    """``LoadAnnotations`` whose ``gt_masks`` pack Ycrf + 2 * Yret.

    Reads ``instance['mask']`` (Ycrf) and ``instance['mask_ret']`` (Yret;
    defaults to the Ycrf mask) as polygons or RLE. Boxes and labels load as
    in mmdet. An instance with an unusable polygon is ignored, as in mmdet.

    Args:
        **kwargs: ``LoadAnnotations`` arguments; ``with_mask`` defaults to
            True and ``poly2mask`` must stay True (bitmaps are packed).
    """

    def __init__(self, with_mask: bool = True, **kwargs) -> None:
        if not kwargs.get('poly2mask', True):
            raise ValueError('LoadAgreementMasks packs bitmaps; poly2mask '
                             'must be True')
        super().__init__(with_mask=with_mask, **kwargs)

    def _decode(self, mask_ann, height: int,
                width: int) -> Optional[np.ndarray]:
        """Bitmap of a polygon / RLE annotation, None if unusable."""
        if isinstance(mask_ann, list):
            polygons = [p for p in mask_ann if len(p) % 2 == 0 and len(p) >= 6]
            if not polygons:
                return None
            mask_ann = polygons
        elif not (isinstance(mask_ann, dict) and 'counts' in mask_ann
                  and 'size' in mask_ann):
            return None
        bitmap = self._poly2mask(mask_ann, height, width)
        if bitmap.shape != (height, width):
            raise ValueError(f'mask of size {bitmap.shape} in an image of '
                             f'size {(height, width)}')
        return bitmap

    def _load_masks(self, results: dict) -> None:
        height, width = results['ori_shape']
        packed, ignore = [], []
        for instance in results.get('instances', []):
            if 'mask' not in instance:
                raise KeyError(f'{results.get("img_path")}: an instance has '
                               'no mask (pseudo-mask json expected)')
            ycrf = self._decode(instance['mask'], height, width)
            yret = self._decode(
                instance.get('mask_ret', instance['mask']), height, width)
            if ycrf is None or yret is None:
                instance['ignore_flag'] = 1
                ycrf = yret = np.zeros((height, width), np.uint8)
            packed.append(pack_mask_pair(ycrf, yret))
            ignore.append(instance['ignore_flag'])
        results['gt_ignore_flags'] = np.array(ignore, dtype=bool)
        data = np.stack(packed) if packed else np.zeros(
            (0, height, width), np.uint8)
        results['gt_masks'] = BitmapMasks(data, height, width)
