"""Dev pseudo-mask jsons built from coco128's real masks (tests only).

Writes the pair stage 2 produces (SPEC §2, §4): ``instances_ycrf.json`` and
``instances_yret.json``, complete COCO dataset jsons with the input's images,
categories and non-crowd annotation ids/boxes, RLE segmentations. Here Ycrf is
the ground-truth mask and Yret that mask eroded by ``erode`` pixels, so the
two disagree on a known band.
"""
from __future__ import annotations

import copy
import json
import os.path as osp
from typing import Tuple

import numpy as np


def write_dev_pseudo_pair(src_ann_file: str,
                          out_dir: str,
                          erode: int = 3) -> Tuple[str, str]:
    """Write ``out_dir/instances_{ycrf,yret}.json`` from a GT COCO json."""
    import cv2
    from pycocotools import mask as mask_utils

    with open(src_ann_file) as f:
        src = json.load(f)
    images = {img['id']: img for img in src['images']}
    kernel = np.ones((2 * erode + 1, 2 * erode + 1), np.uint8)
    outs = {'ycrf': [], 'yret': []}
    for ann in src['annotations']:
        if ann.get('iscrowd', 0):
            continue
        img = images[ann['image_id']]
        h, w = img['height'], img['width']
        seg = ann['segmentation']
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        else:
            rle = seg
        ycrf = mask_utils.decode(rle).astype(np.uint8)
        yret = cv2.erode(ycrf, kernel) if erode > 0 else ycrf
        for key, mask in (('ycrf', ycrf), ('yret', yret)):
            enc = mask_utils.encode(np.asfortranarray(mask))
            enc['counts'] = enc['counts'].decode('ascii')
            new = dict(
                id=ann['id'],
                image_id=ann['image_id'],
                category_id=ann['category_id'],
                bbox=ann['bbox'],
                iscrowd=0,
                area=int(mask.sum()),
                segmentation=enc)
            outs[key].append(new)
    paths = []
    for key in ('ycrf', 'yret'):
        content = copy.deepcopy({
            k: v
            for k, v in src.items() if k != 'annotations'
        })
        content['annotations'] = outs[key]
        path = osp.join(out_dir, f'instances_{key}.json')
        with open(path, 'w') as f:
            json.dump(content, f)
        paths.append(path)
    return paths[0], paths[1]
