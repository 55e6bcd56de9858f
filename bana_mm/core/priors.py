"""Position and class priors from boxes (MDH paper §3.2, eq. 1-2).

Registry-free (numpy only). Boxes are continuous ``(x1, y1, x2, y2)`` with
exclusive ends (pixel column ``j`` spans ``[j, j + 1)``), as mmdet/mmseg
transforms carry them; a box covers pixel columns ``floor(x1) .. ceil(x2) - 1``
and rows likewise. Its border ``S_e`` is the outermost ring of covered pixels,
``S_i`` the covered pixels inside that ring, ``S_o`` the rest. Distances are
Euclidean between pixel indices, so for an inside pixel the nearest border
pixel lies straight up/down/left/right and for an outside pixel it is the
clamp of the pixel onto the ring.

Choices where the paper is silent (docs/mdh.md):

* an image without boxes gets ``G = 255`` everywhere (as far from any object
  as eq. 1 can express) and the background index in the class prior;
* a box too thin to have inside pixels (1-2 px) skips the eq. 2 rescale;
* the class prior paints boxes by descending area, so the smaller box wins;
  equal areas: the later box in the list wins;
* a pixel on a box border counts as inside that box for the fusion of G
  (it is "within" the box) and for the class prior.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

BORDER_VALUE = 128.0
MAX_VALUE = 255.0
NO_BOX_VALUE = 255.0


def _as_boxes(boxes) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f'boxes must have shape (N, 4), got {arr.shape}')
    if not np.isfinite(arr).all():
        raise ValueError('boxes contain a non-finite coordinate')
    return arr


def box_pixel_extent(box: Sequence[float]) -> Tuple[int, int, int, int]:
    """Inclusive pixel rows/columns ``(r1, r2, c1, c2)`` a box covers."""
    x1, y1, x2, y2 = (float(v) for v in box)
    c1, r1 = int(np.floor(x1)), int(np.floor(y1))
    c2 = max(int(np.ceil(x2)) - 1, c1)
    r2 = max(int(np.ceil(y2)) - 1, r1)
    return r1, r2, c1, c2


def _box_geometry(box: Sequence[float], hw: Tuple[int, int]):
    """Per-axis distances of every pixel to the box ring (broadcastable)."""
    r1, r2, c1, c2 = box_pixel_extent(box)
    rows = np.arange(hw[0], dtype=np.float64)[:, None]
    cols = np.arange(hw[1], dtype=np.float64)[None, :]
    out_y = np.maximum(np.maximum(r1 - rows, rows - r2), 0.0)
    out_x = np.maximum(np.maximum(c1 - cols, cols - c2), 0.0)
    in_y = np.minimum(rows - r1, r2 - rows)  # > 0 strictly inside rows
    in_x = np.minimum(cols - c1, c2 - cols)
    return out_y, out_x, in_y, in_x


def distance_map(box: Sequence[float], hw: Tuple[int, int]) -> np.ndarray:
    """Distance map ``D`` of one box: eq. (1), truncated to [0, 255], then
    eq. (2) (inside rescaled so the minimum - the box centre - is 0)."""
    out_y, out_x, in_y, in_x = _box_geometry(box, hw)
    inside = (in_y > 0) & (in_x > 0)
    d_out = np.hypot(out_y, out_x)  # 0 on the ring and inside
    d_in = np.minimum(in_y, in_x)
    dist = np.where(inside, BORDER_VALUE - d_in, BORDER_VALUE + d_out)
    dist = np.clip(dist, 0.0, MAX_VALUE)
    if inside.any():
        d_min = float(dist.min())
        if d_min < BORDER_VALUE:  # eq. (2)
            scaled = BORDER_VALUE * (dist - d_min) / (BORDER_VALUE - d_min)
            dist = np.where(inside, scaled, dist)
    return dist


def box_cover_mask(box: Sequence[float], hw: Tuple[int, int]) -> np.ndarray:
    """Pixels on or inside the box (``S_e`` union ``S_i``), bool (H, W)."""
    r1, r2, c1, c2 = box_pixel_extent(box)
    mask = np.zeros(hw, dtype=bool)
    mask[max(r1, 0):max(r2 + 1, 0), max(c1, 0):max(c2 + 1, 0)] = True
    return mask


def position_prior(boxes, hw: Tuple[int, int]) -> np.ndarray:
    """Position-prior map ``G`` (H, W) float32 in [0, 255] (§3.2).

    A pixel within one or more boxes takes the mean of those boxes' distance
    maps; a pixel within none takes the mean of all distance maps. No boxes:
    ``NO_BOX_VALUE`` everywhere.
    """
    arr = _as_boxes(boxes)
    hw = (int(hw[0]), int(hw[1]))
    if len(arr) == 0:
        return np.full(hw, NO_BOX_VALUE, dtype=np.float32)
    fg_sum = np.zeros(hw, dtype=np.float64)
    fg_count = np.zeros(hw, dtype=np.float64)
    all_sum = np.zeros(hw, dtype=np.float64)
    for box in arr:
        dist = distance_map(box, hw)
        cover = box_cover_mask(box, hw)
        all_sum += dist
        fg_sum += np.where(cover, dist, 0.0)
        fg_count += cover
    background = all_sum / len(arr)
    prior = np.where(fg_count > 0, fg_sum / np.maximum(fg_count, 1.0),
                     background)
    return prior.astype(np.float32)


def class_prior(boxes,
                labels,
                hw: Tuple[int, int],
                background_index: int = 0) -> np.ndarray:
    """Class-prior map (H, W) int64 (§3.2): the label of the smallest box
    covering a pixel, ``background_index`` outside every box."""
    arr = _as_boxes(boxes)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(arr):
        raise ValueError(f'{len(arr)} boxes but {len(labels)} labels')
    hw = (int(hw[0]), int(hw[1]))
    out = np.full(hw, int(background_index), dtype=np.int64)
    areas = (arr[:, 2] - arr[:, 0]) * (arr[:, 3] - arr[:, 1])
    for index in np.argsort(-areas, kind='stable'):
        out[box_cover_mask(arr[index], hw)] = labels[index]
    return out


def boxes_from_masks(
        class_mask: np.ndarray,
        instance_mask: Optional[np.ndarray] = None,
        ignore_index: int = 255,
        background_index: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Tight boxes ``(N, 4)`` and class labels ``(N,)`` from label masks.

    With an instance mask (VOC ``SegmentationObject``) one box per instance
    id, labelled with the most frequent class of its pixels; without it one
    box per 8-connected component of each class. ``ignore_index`` and
    ``background_index`` pixels never form a box.
    """
    import cv2  # local: only this helper needs OpenCV

    class_mask = np.asarray(class_mask)
    boxes, labels = [], []
    if instance_mask is not None:
        instance_mask = np.asarray(instance_mask)
        if instance_mask.shape != class_mask.shape:
            raise ValueError(f'instance mask {instance_mask.shape} and class '
                             f'mask {class_mask.shape} differ in size')
        for inst in np.unique(instance_mask):
            if inst in (0, ignore_index):
                continue
            sel = instance_mask == inst
            cls = class_mask[sel]
            cls = cls[(cls != ignore_index) & (cls != background_index)]
            if cls.size == 0:
                continue
            values, counts = np.unique(cls, return_counts=True)
            boxes.append(_tight_box(sel))
            labels.append(int(values[np.argmax(counts)]))
    else:
        for cls in np.unique(class_mask):
            if cls in (ignore_index, background_index):
                continue
            num, comp = cv2.connectedComponents(
                (class_mask == cls).astype(np.uint8), connectivity=8)
            for k in range(1, num):
                boxes.append(_tight_box(comp == k))
                labels.append(int(cls))
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0, ), np.int64)
    return np.asarray(boxes, np.float32), np.asarray(labels, np.int64)


def _tight_box(sel: np.ndarray) -> list:
    ys, xs = np.nonzero(sel)
    return [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() + 1),
        float(ys.max() + 1)
    ]
