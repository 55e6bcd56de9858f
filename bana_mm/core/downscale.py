"""Stage 2 of a large image at a capped resolution (issue 20.7), registry-free.

An image with more pixels than ``max_pixels`` goes through the network, the
DenseCRF and the retrieval scaled down (same aspect ratio, at most
``max_pixels`` pixels; its boxes alike), so memory is bounded and time is
linear in pixels. Its label maps are then brought back to the original size
(:func:`labels_at_size`): nearest-neighbour upsampling, then the box
constraint of eqs. (6) and (9) applied again at the original resolution (a
class only inside its own boxes, background outside every box), so that no
label leaks past a box edge by the up to ``scale`` pixels that nearest
upsampling can add.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch

from .boxes import ArrayLike, as_boxes, as_labels


@dataclass
class OriginalSize:
    """What a downscaled image's labels are restored to: its size and its
    boxes / 0-based labels at that size."""
    image_hw: Tuple[int, int]
    boxes: np.ndarray
    labels: np.ndarray


def capped_hw(image_hw: Tuple[int, int],
              max_pixels: int) -> Optional[Tuple[int, int]]:
    """The (h, w) an image of ``image_hw`` is labelled at: None when it has
    at most ``max_pixels`` pixels (or ``max_pixels`` is 0, off), else the
    largest size of the same aspect ratio (each side rounded down, at least
    1) with at most ``max_pixels`` pixels."""
    H, W = (int(v) for v in image_hw)
    if not max_pixels or H * W <= max_pixels:
        return None
    scale = math.sqrt(max_pixels / (H * W))
    h, w = max(1, math.floor(H * scale)), max(1, math.floor(W * scale))
    if h * w > max_pixels:  # a side clamped to 1, or float rounding
        if h >= w:
            h = max(1, max_pixels // w)
        else:
            w = max(1, max_pixels // h)
    return h, w


def resize_image(image: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """(H, W, C) uint8 image scaled to ``hw`` with area averaging
    (mmcv ``imresize``, the anti-aliased choice for shrinking)."""
    import mmcv
    return mmcv.imresize(
        np.ascontiguousarray(image), (int(hw[1]), int(hw[0])),
        interpolation='area')


def scale_boxes(boxes: ArrayLike, from_hw: Tuple[int, int],
                to_hw: Tuple[int, int]) -> torch.Tensor:
    """(N, 4) ``(x1, y1, x2, y2)`` boxes of an image of ``from_hw`` in the
    pixels of the same image scaled to ``to_hw``."""
    sy, sx = to_hw[0] / from_hw[0], to_hw[1] / from_hw[1]
    factor = torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
    return as_boxes(boxes) * factor


def box_pixel_ranges(boxes: ArrayLike,
                     image_hw: Tuple[int, int]) -> List[Tuple[int, ...]]:
    """``(y0, y1, x0, x1)`` (ends exclusive) of the pixels of each box, by
    the rule of :func:`~bana_mm.core.boxes.pixel_box_masks` (pixel centres
    inside the box), without an (N, H, W) mask."""
    H, W = (int(v) for v in image_hw)
    ys = torch.arange(H, dtype=torch.float32) + 0.5
    xs = torch.arange(W, dtype=torch.float32) + 0.5
    b = as_boxes(boxes)
    out = []
    for x1, y1, x2, y2 in b.tolist():
        # first centre >= the low edge, first centre >= the high edge
        y = torch.searchsorted(ys, torch.tensor([y1, y2])).tolist()
        x = torch.searchsorted(xs, torch.tensor([x1, x2])).tolist()
        out.append((y[0], max(y), x[0], max(x)))
    return out


def class_region(boxes: ArrayLike, labels: ArrayLike, label: int,
                 image_hw: Tuple[int, int]) -> np.ndarray:
    """(H, W) bool union of the boxes of 0-based class ``label``."""
    region = np.zeros(tuple(int(v) for v in image_hw), dtype=bool)
    keep = (as_labels(labels) == int(label)).numpy()
    for y0, y1, x0, x1 in box_pixel_ranges(as_boxes(boxes)[keep], image_hw):
        region[y0:y1, x0:x1] = True
    return region


def labels_at_size(label_map: np.ndarray,
                   original: OriginalSize) -> np.ndarray:
    """A label map of the downscaled image (0 background, ``label + 1``) at
    the original size: nearest-neighbour upsampling (mmcv ``imresize``),
    then each class kept only inside its own boxes at the original
    resolution (elsewhere background), as eqs. (6) and (9) require."""
    import mmcv
    H, W = original.image_hw
    label_map = np.ascontiguousarray(label_map, dtype=np.uint8)
    out = mmcv.imresize(label_map, (W, H), interpolation='nearest')
    for label in np.unique(original.labels).tolist():
        outside = out == label + 1
        if outside.any():
            outside &= ~class_region(original.boxes, original.labels, label,
                                     (H, W))
            out[outside] = 0
    return out
