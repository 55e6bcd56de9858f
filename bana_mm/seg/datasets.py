"""VOC-layout segmentation dataset with two pseudo-label maps (SPEC §3).

Each training image ``<id>`` gets ``Ycrf`` (``seg_map_path``, packed as
``gt_sem_seg``) and ``Yret`` (``ret_map_path``, packed as ``gt_ret_seg``)
from ``PSEUDO_LABEL_DIR/{Ycrf,Yret}/<id>.png``. Without a pseudo-label
folder the dataset reads the ground truth ``SegmentationClass/<id>.png``
(validation). Semi-supervised mode (paper Tables 4-5): ids listed in
``gt_ids`` use their ground-truth mask as both maps.

Bad input (docs/reliability.md): a missing file is an error listing the
files; an id listed twice in a split file is kept once with a warning; an
empty split file is an error naming it; an image that cannot be decoded at
loading time is an error naming it.
"""
from __future__ import annotations

import os.path as osp
from typing import List, Optional, Sequence, Union

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..utils.io import explain_image_failure, read_split, under_root
from ..utils.label_layout import FINGERPRINT, read_fingerprint

BACKGROUND_NAMES = ('background', '__background__')


def with_background(classes: Sequence[str]) -> tuple:
    """Class names with ``background`` first (index 0), as in VOC masks."""
    classes = tuple(classes)
    if classes and classes[0].lower() in BACKGROUND_NAMES:
        return classes
    return ('background', ) + classes


def metainfo_with_background(metainfo: Optional[dict], dataset: str) -> dict:
    """A copy of ``metainfo`` whose ``classes`` (the object classes, which
    ``dataset`` requires) start with ``background``."""
    metainfo = dict(metainfo or {})
    if 'classes' not in metainfo:
        raise ValueError(f'{dataset} needs metainfo=dict(classes=...) (object '
                         'classes; background is added as class 0)')
    metainfo['classes'] = with_background(metainfo['classes'])
    return metainfo


@DATASETS.register_module()
class PseudoLabelVOCDataset(BaseSegDataset):
    """VOC-layout images with Ycrf/Yret pseudo labels or ground truth.

    Args:
        ann_file: split list (relative to ``data_root``).
        pseudo_label_dir: folder holding ``Ycrf/`` and ``Yret/`` (absolute or
            relative to ``data_root``); None reads the ground truth for both
            maps (validation / fully supervised).
        ycrf_dir, yret_dir: sub-folder names inside ``pseudo_label_dir``.
        gt_ids: semi-supervised mode: a split-list path (relative to
            ``data_root``) or a list of ids whose ground truth replaces both
            pseudo-label maps.
        data_prefix: ``img_path`` (JPEGImages) and ``seg_map_path`` (the
            ground-truth folder, SegmentationClass).
        metainfo: ``classes`` with or without a leading ``background``.
    """

    METAINFO = dict()

    def __init__(self,
                 ann_file: str = 'ImageSets/Segmentation/train.txt',
                 pseudo_label_dir: Optional[str] = None,
                 ycrf_dir: str = 'Ycrf',
                 yret_dir: str = 'Yret',
                 gt_ids: Optional[Union[str, Sequence[str]]] = None,
                 data_prefix: dict = dict(
                     img_path='JPEGImages', seg_map_path='SegmentationClass'),
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        metainfo = metainfo_with_background(metainfo, 'PseudoLabelVOCDataset')
        self.pseudo_label_dir = pseudo_label_dir
        self.ycrf_dir = ycrf_dir
        self.yret_dir = yret_dir
        self.gt_ids = gt_ids
        super().__init__(
            ann_file=ann_file,
            data_prefix=data_prefix,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            metainfo=metainfo,
            **kwargs)

    def _gt_id_set(self) -> set:
        if self.gt_ids is None:
            return set()
        if isinstance(self.gt_ids, str):
            return set(read_split(under_root(self.data_root, self.gt_ids)))
        return set(self.gt_ids)

    def _check_label_origin(self, pl_root: str) -> None:
        """Pseudo labels whose ``fingerprint.json`` (written by stage 2)
        names another data root were made from other images: an error
        naming both roots."""
        record = read_fingerprint(pl_root)
        made_from = ((record or {}).get('dataset') or {}).get('data_root')
        if not made_from or not self.data_root:
            return
        if osp.realpath(made_from) != osp.realpath(self.data_root):
            raise ValueError(
                f'{osp.join(pl_root, FINGERPRINT)}: the pseudo labels in '
                f'{pl_root} were made from the images of {made_from}, not '
                f'of this data root {osp.abspath(self.data_root)}; label '
                'this data root (stage 2) or point data_root at the other')

    def load_data_list(self) -> List[dict]:
        """One entry per id of ``ann_file`` (kept once); every file must
        exist."""
        img_dir = self.data_prefix.get('img_path', '')
        gt_dir = self.data_prefix.get('seg_map_path', '')
        pl_root = (None if self.pseudo_label_dir is None else under_root(
            self.data_root, self.pseudo_label_dir))
        gt_set = self._gt_id_set()
        if pl_root is not None:
            self._check_label_origin(pl_root)
        data_list, missing = [], []
        for img_id in read_split(self.ann_file):
            img_path = osp.join(img_dir, img_id + self.img_suffix)
            gt_path = osp.join(gt_dir, img_id + self.seg_map_suffix)
            if pl_root is None or img_id in gt_set:
                crf_path = ret_path = gt_path
            else:
                name = img_id + self.seg_map_suffix
                crf_path = osp.join(pl_root, self.ycrf_dir, name)
                ret_path = osp.join(pl_root, self.yret_dir, name)
            for path in dict.fromkeys((img_path, crf_path, ret_path)):
                if not osp.isfile(path):
                    missing.append(path)
            data_list.append(
                dict(
                    img_path=img_path,
                    seg_map_path=crf_path,
                    ret_map_path=ret_path,
                    img_id=img_id,
                    uses_gt=crf_path == gt_path,
                    num_classes=len(self.metainfo['classes']),
                    label_map=self.label_map,
                    reduce_zero_label=self.reduce_zero_label,
                    seg_fields=[]))
        if missing:
            shown = '\n  '.join(missing[:10])
            more = f'\n  ... and {len(missing) - 10} more' \
                if len(missing) > 10 else ''
            raise FileNotFoundError(
                f'{len(missing)} file(s) listed by {self.ann_file} are '
                f'missing:\n  {shown}{more}')
        unknown = gt_set - {d['img_id'] for d in data_list}
        if unknown and self.pseudo_label_dir is not None:
            raise ValueError(f'gt_ids names images not in {self.ann_file}: '
                             f'{sorted(unknown)[:10]}')
        return data_list

    def prepare_data(self, idx: int):
        try:
            return super().prepare_data(idx)
        except Exception as err:  # an unreadable image is named
            explain_image_failure(self.get_data_info(idx)['img_path'], err)
            raise
