"""Boxes, registry-free: annotation checks shared by every box dataset and
rasterisation of boxes into masks at feature or image resolution."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor


class BoxAnnotationError(ValueError):
    """An annotation file that cannot be used; the message names the file."""


@dataclass
class CheckedBoxes:
    """Boxes that survived :func:`clip_boxes`, and why the others did not."""
    boxes: List[List[float]] = field(default_factory=list)
    labels: List[int] = field(default_factory=list)
    kept_indices: List[int] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)


def clip_boxes(boxes: Sequence[Sequence[float]], labels: Sequence[int],
               width: int, height: int) -> CheckedBoxes:
    """Clip ``(x1, y1, x2, y2)`` boxes to the image and drop empty ones.

    A box that lies outside the image, or has zero width or height once
    clipped, cannot supervise anything: it is dropped and the reason recorded
    in ``dropped`` so the caller can warn with the file name.
    """
    out = CheckedBoxes()
    for index, (box, label) in enumerate(zip(boxes, labels)):
        x1, y1, x2, y2 = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            out.dropped.append(
                f'box #{index} {[x1, y1, x2, y2]} has a non-finite coordinate')
            continue
        cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
        cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
        if cx2 - cx1 <= 0 or cy2 - cy1 <= 0:
            out.dropped.append(
                f'box #{index} {[x1, y1, x2, y2]} has zero area inside the '
                f'{width}x{height} image')
            continue
        out.boxes.append([cx1, cy1, cx2, cy2])
        out.labels.append(int(label))
        out.kept_indices.append(index)
    return out


#: How VOC XML integers become pixels: ``'voc'`` (1-based inclusive, the
#: VOC devkit's meaning) or ``'authors'`` (the BANA code's 0-based slices
#: ``[xmin:xmax]``: the first row and column of every box left out).
VOC_BOX_CONVENTIONS = ('voc', 'authors')


def voc_box_to_xyxy(
        xmin: float,
        ymin: float,
        xmax: float,
        ymax: float,
        convention: str = 'voc') -> Tuple[float, float, float, float]:
    """Continuous ``(x1, y1, x2, y2)`` with exclusive ends from VOC XML
    integers. ``'voc'``: 1-based inclusive pixel indices (pixel ``xmin``
    starts at ``xmin - 1``, pixel ``xmax`` ends at ``xmax``); ``'authors'``:
    the same numbers read as 0-based slice bounds, to reproduce the authors'
    pseudo labels pixel for pixel (docs/authors_comparison.md)."""
    if convention == 'authors':
        return float(xmin), float(ymin), float(xmax), float(ymax)
    if convention != 'voc':
        raise ValueError(f'box convention must be one of '
                         f'{VOC_BOX_CONVENTIONS}, got {convention!r}')
    return xmin - 1.0, ymin - 1.0, float(xmax), float(ymax)


# ------------------------------------------------------- rasterisation
ArrayLike = Union[Tensor, np.ndarray, Sequence]


def as_boxes(boxes: ArrayLike) -> Tensor:
    """(N, 4) float32 tensor of ``(x1, y1, x2, y2)`` boxes."""
    if not isinstance(boxes, Tensor):
        boxes = np.asarray(boxes, dtype=np.float32)
    return torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def as_labels(labels: ArrayLike) -> Tensor:
    """(N,) int64 tensor of 0-based class labels."""
    if not isinstance(labels, Tensor):
        labels = np.asarray(labels, dtype=np.int64)
    return torch.as_tensor(labels, dtype=torch.long).reshape(-1)


def present_class_ids(labels: ArrayLike) -> Tensor:
    """Sorted map ids (label + 1) of the distinct classes in ``labels``."""
    return torch.unique(as_labels(labels)) + 1


def box_masks_at(boxes: Tensor, input_hw: Tuple[int, int],
                 feat_hw: Tuple[int, int]) -> Tensor:
    """Rasterise boxes at feature resolution by nearest sampling.

    Args:
        boxes: (K, 4) boxes ``(x1, y1, x2, y2)`` in input pixels.
        input_hw: (H, W) of the network input the boxes refer to.
        feat_hw: (h, w) of the feature map.

    Returns:
        (K, h, w) bool masks; cell (i, j) is inside box k when the centre of
        input pixel ``(floor(i*H/h), floor(j*W/w))`` lies in the box.
    """
    (H, W), (h, w) = input_hw, feat_hw
    device = boxes.device
    ys = torch.div(
        torch.arange(h, device=device) * H, h, rounding_mode='floor').to(
            boxes.dtype) + 0.5
    xs = torch.div(
        torch.arange(w, device=device) * W, w, rounding_mode='floor').to(
            boxes.dtype) + 0.5
    x1, y1, x2, y2 = (boxes[:, k, None] for k in range(4))
    inside_y = (ys[None] >= y1) & (ys[None] < y2)  # (K, h)
    inside_x = (xs[None] >= x1) & (xs[None] < x2)  # (K, w)
    return inside_y[:, :, None] & inside_x[:, None, :]


def pixel_box_masks(boxes: ArrayLike, image_hw: Tuple[int, int]) -> Tensor:
    """(N, H, W) bool masks of boxes at image resolution (pixel centres)."""
    return box_masks_at(as_boxes(boxes), image_hw, image_hw)


def class_box_masks(box_masks: Tensor, labels: ArrayLike,
                    class_ids: Tensor) -> Tensor:
    """(K, h, w) union of the box masks of each class in ``class_ids``."""
    labels = as_labels(labels)
    out = box_masks.new_zeros((len(class_ids), ) + tuple(box_masks.shape[1:]))
    for k, cid in enumerate(class_ids.tolist()):
        sel = labels == cid - 1
        if sel.any():
            out[k] = box_masks[sel].any(dim=0)
    return out
