"""VOC-layout dataset of MDH: F (ground truth) + W (weak masks), with boxes.

``F`` = ids of ``full_split`` (ground truth ``SegmentationClass/<id>.png``);
``W`` = every other id of ``ann_file``, labelled by ``weak_label_dir/<id>.png``
(proposal masks in round 0, AnnNet pseudo masks later; 255 = ignore). Every
image carries its boxes (``gt_bboxes`` continuous xyxy, ``gt_bboxes_labels``
= segmentation class indices, background 0 never a box) for the priors of
§3.2: from ``Annotations/<id>.xml``, else derived from ``SegmentationObject``
(+ ``SegmentationClass``), else from the class mask's connected components.
Each entry is tagged ``is_full``.

Without ``full_split`` and ``weak_label_dir`` the dataset is a plain
evaluation/prediction set: the ground truth is loaded when it exists
(``seg_map_path`` None otherwise, see ``LoadOptionalAnnotations``).
"""
from __future__ import annotations

import logging
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ...core.boxes import clip_boxes
from ...core.priors import boxes_from_masks
from ...datasets.voc_annotations import read_voc_xml
from ...utils.io import explain_image_failure, read_split, under_root
from ...utils.label_io import (check_label_map, read_checked_label_png,
                               read_label_png)
from ..datasets import metainfo_with_background


def read_voc_boxes(xml_path: str,
                   class_index: dict) -> Tuple[np.ndarray, np.ndarray]:
    """Boxes ``(N, 4)`` and segmentation class indices from a VOC XML file;
    boxes outside the image are dropped with a warning naming the file."""
    ann = read_voc_xml(xml_path, class_index)
    width, height, boxes, labels = (ann.width, ann.height, ann.boxes,
                                    ann.labels)
    checked = clip_boxes(boxes, labels, width, height)
    for reason in checked.dropped:
        print_log(
            f'{xml_path}: dropped {reason}',
            logger='current',
            level=logging.WARNING)
    return (np.asarray(checked.boxes, np.float32).reshape(-1, 4),
            np.asarray(checked.labels, np.int64))


@DATASETS.register_module()
class MDHVOCDataset(BaseSegDataset):
    """F/W segmentation dataset with boxes and ``is_full`` tags (MDH §3.4).

    Args:
        ann_file: split list (relative to ``data_root``).
        full_split: id list of F (path relative to ``data_root`` or absolute);
            every id must be in ``ann_file`` and have a ground-truth PNG.
        weak_label_dir: folder of W's masks ``<id>.png`` (relative to
            ``data_root`` or absolute). Required when ``full_split`` leaves
            some ids weak.
        box_dir / instance_dir: ``Annotations`` / ``SegmentationObject``.
        metainfo: ``dict(classes=...)``, background added as class 0.
    """

    METAINFO = dict()

    def __init__(self,
                 ann_file: str = 'ImageSets/Segmentation/train.txt',
                 full_split: Optional[str] = None,
                 weak_label_dir: Optional[str] = None,
                 box_dir: str = 'Annotations',
                 instance_dir: str = 'SegmentationObject',
                 data_prefix: dict = dict(
                     img_path='JPEGImages', seg_map_path='SegmentationClass'),
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        metainfo = metainfo_with_background(metainfo, 'MDHVOCDataset')
        self.full_split = full_split
        self.weak_label_dir = weak_label_dir
        self.box_dir = box_dir
        self.instance_dir = instance_dir
        super().__init__(
            ann_file=ann_file,
            data_prefix=data_prefix,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            metainfo=metainfo,
            **kwargs)

    def _full_ids(self, ids: Sequence[str]) -> set:
        if self.full_split is None:
            return set()
        path = under_root(self.data_root, self.full_split)
        if not osp.isfile(path):
            raise FileNotFoundError(f'full split {path} not found')
        full = read_split(path)
        unknown = sorted(set(full) - set(ids))
        if unknown:
            raise ValueError(f'full split {path} lists ids that are not in '
                             f'the training split {self.ann_file}: '
                             f'{unknown[:10]}')
        return set(full)  # read_split refuses an empty list, naming it

    def load_data_list(self) -> List[dict]:
        ids = read_split(self.ann_file)
        full = self._full_ids(ids)
        weak_root = (None if self.weak_label_dir is None else under_root(
            self.data_root, self.weak_label_dir))
        if self.full_split is not None and weak_root is None \
                and len(full) < len(ids):
            raise ValueError('MDHVOCDataset: weak_label_dir is required for '
                             f'the {len(ids) - len(full)} W ids of '
                             f'{self.ann_file} outside {self.full_split}')
        class_index = {n: i for i, n in enumerate(self._metainfo['classes'])}
        img_dir = self.data_prefix.get('img_path', '')
        gt_dir = self.data_prefix.get('seg_map_path', '')
        missing_img, missing_gt, missing_weak = [], [], []
        data_list = []
        for img_id in ids:
            img_path = osp.join(img_dir, img_id + self.img_suffix)
            gt_path = osp.join(gt_dir, img_id + self.seg_map_suffix)
            if not osp.isfile(img_path):
                missing_img.append(img_path)
            if img_id in full or weak_root is None:
                is_full = osp.isfile(gt_path)
                seg_path = gt_path if is_full else None
                if img_id in full and not is_full:
                    missing_gt.append(gt_path)
            else:
                is_full = False
                seg_path = osp.join(weak_root, img_id + self.seg_map_suffix)
                if not osp.isfile(seg_path):
                    missing_weak.append(seg_path)
            boxes, labels = self._boxes(img_id, gt_path, class_index)
            data_list.append(
                dict(
                    img_path=img_path,
                    seg_map_path=seg_path,
                    img_id=img_id,
                    is_full=bool(is_full),
                    gt_bboxes=boxes,
                    gt_bboxes_labels=labels,
                    label_map=self.label_map,
                    reduce_zero_label=self.reduce_zero_label,
                    seg_fields=[]))
        for what, paths in (('image', missing_img),
                            ('ground-truth PNG of an F id',
                             missing_gt), ('weak mask', missing_weak)):
            if paths:
                raise FileNotFoundError(
                    f'{len(paths)} {what} file(s) missing for '
                    f'{self.ann_file}: {paths[:10]}')
        return data_list

    def _boxes(self, img_id: str, gt_path: str,
               class_index: dict) -> Tuple[np.ndarray, np.ndarray]:
        root = self.data_root or ''
        xml_path = osp.join(root, self.box_dir, img_id + '.xml')
        if osp.isfile(xml_path):
            return read_voc_boxes(xml_path, class_index)
        if osp.isfile(gt_path):  # derive from the masks (no box file)
            inst_path = osp.join(root, self.instance_dir,
                                 img_id + self.seg_map_suffix)
            inst = (
                read_label_png(inst_path) if osp.isfile(inst_path) else None)
            gt = read_label_png(gt_path)
            check_label_map(gt, gt_path, len(self._metainfo['classes']))
            boxes, labels = boxes_from_masks(gt, inst)
            return boxes.astype(np.float32), labels
        print_log(
            f'{img_id}: no box file {xml_path} and no mask to derive '
            'boxes from; it gets background priors',
            logger='current',
            level=logging.WARNING)
        return np.zeros((0, 4), np.float32), np.zeros((0, ), np.int64)

    def prepare_data(self, idx: int):
        """The pipeline's sample, after checking its label map (ground
        truth of an F id, weak mask of a W id) as stage 3 does: readable,
        of its image's size, values < classes or 255; errors name the
        file. An unreadable image is named too."""
        info = self.get_data_info(idx)
        if info.get('seg_map_path'):
            read_checked_label_png(info['seg_map_path'],
                                   len(self.metainfo['classes']),
                                   info['img_path'])
        try:
            return super().prepare_data(idx)
        except Exception as err:
            explain_image_failure(info['img_path'], err)
            raise

    def full_flags(self) -> List[bool]:
        """``is_full`` of every entry, in index order."""
        return [
            bool(self.get_data_info(i)['is_full']) for i in range(len(self))
        ]
