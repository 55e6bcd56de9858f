"""COCO json export of stage-2 instance pseudo masks (SPEC §2, paper Table 2):
``instances_ycrf.json`` / ``instances_yret.json`` with the input json's image
and annotation ids, each non-crowd box's mask ``(Y == c)`` inside the box as
RLE, so pycocotools and Mask R-CNN (:mod:`bana_mm.det.agreement_data`) read
them directly."""
from __future__ import annotations

import contextlib
import io
import json
import os.path as osp
from typing import Dict

import numpy as np

from ..core.instance_masks import instance_masks, masks_to_coco_rle
from ..utils.io import atomic_write_text
from ..utils.label_io import read_label_png
from ..utils.label_layout import MAPS, image_stem, label_path


def write_coco_instances(dataset, out_dir: str) -> Dict[str, str]:
    """``instances_ycrf.json`` / ``instances_yret.json``: the input COCO
    json with every non-crowd box's pseudo mask (SPEC §2: (Y == c) inside
    the box) as RLE, same ids; images without label files are left out."""
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools chatter
        coco = COCO(dataset.ann_file)
    cat2label = dataset.cat2label
    stems = {}
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        stems[info['img_id']] = image_stem(info)
    outputs = {}
    for kind in MAPS:
        images, annotations = [], []
        for img_id, stem in stems.items():
            path = label_path(out_dir, kind, stem)
            if not osp.isfile(path):
                continue
            label_map = read_label_png(path)
            images.append(coco.imgs[img_id])
            anns = [
                a for a in coco.imgToAnns.get(img_id, [])
                if not a.get('iscrowd', 0) and a['category_id'] in cat2label
            ]
            if not anns:
                continue
            boxes = np.array([[
                a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                a['bbox'][1] + a['bbox'][3]
            ] for a in anns],
                             dtype=np.float32)
            labels = [cat2label[a['category_id']] for a in anns]
            masks = instance_masks(label_map, boxes, labels)
            for ann, mask, rle in zip(anns, masks, masks_to_coco_rle(masks)):
                annotations.append(
                    dict(
                        id=ann['id'],
                        image_id=img_id,
                        category_id=ann['category_id'],
                        bbox=ann['bbox'],
                        iscrowd=0,
                        area=int(mask.sum()),
                        segmentation=rle))
        data = dict(
            images=images,
            categories=[coco.cats[c] for c in sorted(coco.cats)],
            annotations=annotations)
        path = osp.join(out_dir, f'instances_{kind.lower()}.json')
        atomic_write_text(path, json.dumps(data))
        outputs[kind] = path
    return outputs
