"""Instance pseudo masks for COCO / Mask R-CNN (SPEC §2, paper Table 2),
registry-free: ``mask_i = (Y == c_i)`` inside box i, exported as COCO RLE.
The Ycrf + 2 Yret packing of a mask pair is :mod:`bana_mm.core.agreement`.
"""
from __future__ import annotations

import numpy as np

from .boxes import ArrayLike, as_labels, pixel_box_masks


def instance_masks(label_map: ArrayLike, boxes: ArrayLike,
                   labels: ArrayLike) -> np.ndarray:
    """(N, H, W) bool: mask_i = (Y == c_i + 1) inside box i."""
    y = np.asarray(label_map)
    masks = pixel_box_masks(boxes, y.shape).numpy()
    ids = as_labels(labels).numpy() + 1
    return masks & (y[None] == ids[:, None, None])


def masks_to_coco_rle(masks: np.ndarray) -> list:
    """COCO RLE dicts (``counts`` as str, json-ready) of (N, H, W) masks."""
    from pycocotools import mask as mask_utils
    masks = np.asarray(masks, dtype=np.uint8)
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    for rle in rles:
        rle['counts'] = rle['counts'].decode('ascii')
    return rles
