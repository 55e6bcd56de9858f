"""Box datasets in mmdet's scope: PASCAL VOC XML and COCO json.

Both validate their input the same way (SPEC "bad input", docs/reliability.md):
an unknown class name or category is an error naming the annotation file; a
missing image or annotation file is an error naming it; boxes outside the
image or of zero area after clipping are dropped with a warning naming the
file; images left without boxes are skipped with a warning when training
(kept in test mode, where they simply yield no box), and a dataset left with
no image at all is an error naming the file. Boxes are clipped to the image
as it decodes (header read at load time), not to a declared size that
disagrees with it; COCO categories map to classes by name, never by
position; an id listed twice in a split file is kept once.
"""
from __future__ import annotations

import logging
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from mmdet.datasets import BaseDetDataset, CocoDataset
from mmdet.registry import DATASETS
from mmengine.fileio import get_local_path, list_from_file
from mmengine.logging import print_log

from ..core.boxes import VOC_BOX_CONVENTIONS, BoxAnnotationError, clip_boxes
from ..datasets.voc_annotations import read_voc_xml
from ..utils.io import explain_image_failure, image_size, read_split

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
               'tvmonitor')


def read_class_names(path: str) -> tuple:
    """Read a ``class_names.txt`` (one name per line, optional leading
    ``background``) into the tuple of object classes."""
    names = [n.strip() for n in list_from_file(path) if n.strip()]
    if names and names[0].lower() in ('background', '__background__'):
        names = names[1:]
    if not names:
        raise BoxAnnotationError(f'{path}: no class names')
    return tuple(names)


def _warn(message: str) -> None:
    print_log(message, logger='current', level=logging.WARNING)


def _repeated(ids: list) -> list:
    """The ids that occur more than once, sorted."""
    return sorted(i for i, n in Counter(ids).items() if n > 1)


class _BoxCheckMixin:
    """Shared instance validation, empty-image filtering and image checks."""

    def _decoded_size(self, img_path: str, width: int, height: int,
                      source: str) -> Tuple[int, int]:
        """The image's decoded ``(width, height)``; a declared size that
        disagrees is replaced, with a warning naming ``source``."""
        size = image_size(img_path)
        if size is None or size == (width, height):
            return width, height
        _warn(f'{source}: declares size {width}x{height} but {img_path} is '
              f'{size[0]}x{size[1]} (WxH); boxes are clipped to the image')
        return size

    def _checked_instances(self,
                           boxes: List[Sequence[float]],
                           labels: List[int],
                           width: int,
                           height: int,
                           source: str,
                           extra: Optional[List[dict]] = None) -> List[dict]:
        checked = clip_boxes(boxes, labels, width, height)
        for reason in checked.dropped:
            _warn(f'{source}: dropped {reason}')
        instances = []
        for box, label, index in zip(checked.boxes, checked.labels,
                                     checked.kept_indices):
            instance = dict(bbox=box, bbox_label=label, ignore_flag=0)
            if extra is not None:
                instance.update(extra[index])
            instances.append(instance)
        return instances

    def filter_data(self) -> List[dict]:
        if self.test_mode:
            return self.data_list
        kept = []
        for info in self.data_list:
            usable = [i for i in info['instances'] if not i['ignore_flag']]
            if usable:
                kept.append(info)
            else:
                _warn(f'{info["img_path"]}: skipped for training, it has no '
                      'usable box')
        if not kept:
            raise BoxAnnotationError(
                f'{self.ann_file}: none of its {len(self.data_list)} images '
                'has a usable box; nothing to train on')
        return kept

    def prepare_data(self, idx: int):
        try:
            return super().prepare_data(idx)
        except Exception as err:  # an unreadable image is named
            explain_image_failure(self.get_data_info(idx)['img_path'], err)
            raise


@DATASETS.register_module()
class VOCBoxDataset(_BoxCheckMixin, BaseDetDataset):
    """Boxes from PASCAL VOC XML files (``Annotations/<id>.xml``).

    Args:
        ann_file: image-id list, e.g. ``ImageSets/Segmentation/train.txt``.
        img_subdir / ann_subdir: folders under ``data_root``.
        img_suffix: image file suffix.
        box_convention: ``'voc'`` (1-based inclusive, default) or
            ``'authors'`` (the BANA code's slices, to reproduce its pseudo
            labels exactly), see :func:`~bana_mm.core.boxes.voc_box_to_xyxy`.
        metainfo: ``dict(classes=...)``; defaults to the 20 VOC classes.

    Boxes are converted from VOC's 1-based inclusive integers to continuous
    ``(x1, y1, x2, y2)``; difficult objects are kept (their box is still a
    box).
    """

    METAINFO = dict(classes=VOC_CLASSES)

    def __init__(self,
                 img_subdir: str = 'JPEGImages',
                 ann_subdir: str = 'Annotations',
                 img_suffix: str = '.jpg',
                 box_convention: str = 'voc',
                 **kwargs) -> None:
        if box_convention not in VOC_BOX_CONVENTIONS:
            raise ValueError(f'box_convention must be one of '
                             f'{VOC_BOX_CONVENTIONS}, got {box_convention!r}')
        self.box_convention = box_convention
        self.img_subdir = img_subdir
        self.ann_subdir = ann_subdir
        self.img_suffix = img_suffix
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        classes = self._metainfo['classes']
        self.cat2label = {name: i for i, name in enumerate(classes)}
        return [
            self._parse_image(img_id) for img_id in read_split(self.ann_file)
        ]

    def _parse_image(self, img_id: str) -> dict:
        root = self.data_root or ''
        img_path = osp.join(root, self.img_subdir, img_id + self.img_suffix)
        xml_path = osp.join(root, self.ann_subdir, img_id + '.xml')
        if not osp.isfile(img_path):
            raise FileNotFoundError(f'image file not found: {img_path} '
                                    f'(listed in {self.ann_file})')
        if not osp.isfile(xml_path):
            raise FileNotFoundError(f'annotation file not found: {xml_path}')
        ann = read_voc_xml(xml_path, self.cat2label, self.box_convention)
        width, height, boxes, labels = (ann.width, ann.height, ann.boxes,
                                        ann.labels)
        width, height = self._decoded_size(img_path, width, height, xml_path)
        instances = self._checked_instances(boxes, labels, width, height,
                                            xml_path)
        return dict(
            img_path=img_path,
            img_id=img_id,
            xml_path=xml_path,
            height=height,
            width=width,
            instances=instances)


@DATASETS.register_module()
class CocoBoxDataset(_BoxCheckMixin, CocoDataset):
    """Boxes (and, if present, masks) from a COCO json.

    Unlike mmdet's ``CocoDataset`` it does not drop bad boxes silently and it
    rejects annotations whose category is not in ``metainfo['classes']``.
    Crowd annotations keep mmdet's meaning (``ignore_flag=1``).
    """

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'annotation file not found: {self.ann_file}')
        try:
            with get_local_path(
                    self.ann_file, backend_args=self.backend_args) as path:
                self.coco = self.COCOAPI(path)
            return self._parse_coco()
        except (ValueError, KeyError, TypeError, AssertionError) as err:
            if isinstance(err, BoxAnnotationError):
                raise
            raise BoxAnnotationError(
                f'{self.ann_file}: malformed COCO annotation file '
                f'({type(err).__name__}: {err})') from err
        finally:
            self.coco = None

    def _parse_coco(self) -> List[dict]:
        content = self.coco.dataset
        if not content.get('images'):
            raise BoxAnnotationError(
                f'{self.ann_file}: no images (its "images" list is missing '
                'or empty)')
        self.cat2label = self._category_labels(content.get('categories'))
        self.cat_ids = sorted(self.cat2label, key=self.cat2label.get)
        listed = [img['id'] for img in content['images']]
        repeated = _repeated(listed)
        if repeated:
            _warn(f'{self.ann_file}: image id(s) listed more than once, each '
                  f'kept once: {repeated[:10]}')
        repeated = _repeated(
            [ann['id'] for ann in content.get('annotations', [])])
        if repeated:
            raise BoxAnnotationError(
                f'{self.ann_file}: annotation ids are not unique: '
                f'{repeated[:10]}')
        known = set(listed)
        orphans = [
            ann for ann in content.get('annotations', [])
            if ann.get('image_id') not in known
        ]
        if orphans:
            strays = sorted({str(ann.get('image_id')) for ann in orphans})
            _warn(f'{self.ann_file}: {len(orphans)} annotation(s) name an '
                  f'image_id that is not in "images" (image_id(s) '
                  f'{", ".join(strays[:10])}; annotation id(s) '
                  f'{[ann.get("id") for ann in orphans[:10]]}): their boxes '
                  'are not used')
        data_list = []
        for img_id in dict.fromkeys(listed):
            raw_img_info = dict(self.coco.imgs[img_id], img_id=img_id)
            anns = self.coco.load_anns(self.coco.get_ann_ids(img_ids=[img_id]))
            data_list.append(
                self.parse_data_info(
                    dict(raw_ann_info=anns, raw_img_info=raw_img_info)))
        return data_list

    def _category_labels(self, categories: Optional[list]) -> Dict[int, int]:
        """``category_id -> label`` with ``label`` the index of the
        category's *name* in ``metainfo['classes']`` (the json's order of
        categories does not matter). Categories that are not classes get no
        label (their annotations are an error in :meth:`parse_data_info`)."""
        if not categories:
            raise BoxAnnotationError(f'{self.ann_file}: no "categories" list')
        classes = list(self.metainfo['classes'])
        by_name: Dict[str, int] = {}
        for cat in categories:
            name = cat['name']
            if name in by_name:
                raise BoxAnnotationError(
                    f'{self.ann_file}: category name {name!r} is used by '
                    f'ids {by_name[name]} and {cat["id"]}')
            by_name[name] = cat['id']
        absent = [c for c in classes if c not in by_name]
        if absent:
            _warn(f'{self.ann_file}: no category named {absent}; no box '
                  'will have these classes')
        return {by_name[c]: i for i, c in enumerate(classes) if c in by_name}

    def parse_data_info(self, raw_data_info: dict) -> dict:
        img_info = raw_data_info['raw_img_info']
        anns = raw_data_info['raw_ann_info']
        # mmdet configs name the image prefix 'img'; BaseDataset's default
        # 'img_path' already holds data_root.
        prefix = self.data_prefix.get('img',
                                      self.data_prefix.get('img_path', ''))
        img_path = osp.join(prefix, img_info['file_name'])
        if not osp.isfile(img_path):
            raise FileNotFoundError(f'image file not found: {img_path} '
                                    f'(listed in {self.ann_file})')
        boxes, labels, extra = [], [], []
        for ann in anns:
            if ann['category_id'] not in self.cat2label:
                raise BoxAnnotationError(
                    f'{self.ann_file}: annotation {ann.get("id")} of image '
                    f'{img_info["file_name"]} has unknown category_id '
                    f'{ann["category_id"]}')
            x, y, w, h = (float(v) for v in ann['bbox'])
            boxes.append([x, y, x + w, y + h])
            labels.append(self.cat2label[ann['category_id']])
            item = dict(ignore_flag=int(bool(ann.get('iscrowd', False))))
            if ann.get('segmentation'):
                item['mask'] = ann['segmentation']
            extra.append(item)
        source = f'{self.ann_file} ({img_info["file_name"]})'
        width, height = self._decoded_size(img_path, img_info['width'],
                                           img_info['height'], source)
        instances = self._checked_instances(boxes, labels, width, height,
                                            source, extra)
        return dict(
            img_path=img_path,
            img_id=img_info['img_id'],
            seg_map_path=None,
            height=height,
            width=width,
            instances=instances)
