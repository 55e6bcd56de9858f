"""The two simple pseudo-label baselines of paper Table 1: "Box" and
"GrabCut" (registry-free numpy / OpenCV).

Both return (H, W) uint8 maps with 0 = background and ``label + 1`` inside
objects (the convention of :mod:`bana_mm.core.pseudo_labels`). Where boxes
overlap, the smaller box is painted last, so it wins.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from .boxes import ArrayLike, pixel_box_masks

#: Seed of OpenCV's generator before every GrabCut call.
GRABCUT_SEED = 0


@dataclass(frozen=True)
class GrabCutOptions:
    """How :func:`grabcut_mask` runs on each box.

    Attributes:
        iterations: GrabCut iterations.
        margin: the window around the box, in box sizes per side.
        fill_below: a box whose GrabCut foreground covers at most this share
            of it is returned filled; None never fills. On small or
            low-contrast COCO objects GrabCut often keeps nothing of the box
            (44 % of coco128's W boxes), which erases the object; the box is
            the better guess there (docs/mdh.md, "GrabCut that keeps
            nothing"). Not in the paper.
    """
    iterations: int = 5
    margin: float = 0.5
    fill_below: Optional[float] = None

    def __post_init__(self) -> None:
        if int(self.iterations) < 1:
            raise ValueError(
                f'GrabCut iterations must be >= 1; got {self.iterations}')
        if not self.margin >= 0:
            raise ValueError(f'GrabCut margin must be >= 0; got {self.margin}')
        if self.fill_below is not None and not 0 <= self.fill_below < 1:
            raise ValueError('GrabCut fill_below must lie in [0, 1) or be '
                             f'None; got {self.fill_below}')


def _area_order(boxes: np.ndarray) -> np.ndarray:
    """Box indices from the largest to the smallest area (stable)."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.argsort(-areas, kind='stable')


def _as_numpy_boxes(boxes: ArrayLike) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def paint_by_box_area(masks: Sequence[np.ndarray], boxes: ArrayLike,
                      labels: Sequence[int],
                      image_hw: Tuple[int, int]) -> np.ndarray:
    """Paint each (H, W) bool mask with its box's class (``label + 1``),
    from the largest box to the smallest, so a smaller box's mask wins."""
    boxes = _as_numpy_boxes(boxes)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if not len(masks) == len(boxes) == len(labels):
        raise ValueError(f'{len(masks)} masks, {len(boxes)} boxes and '
                         f'{len(labels)} labels')
    out = np.zeros(image_hw, dtype=np.uint8)
    for i in _area_order(boxes):
        out[np.asarray(masks[i], dtype=bool)] = labels[i] + 1
    return out


def box_baseline(boxes: ArrayLike, labels: Sequence[int],
                 image_hw: Tuple[int, int]) -> np.ndarray:
    """"Box": each box filled with its class, smaller boxes on top."""
    boxes = _as_numpy_boxes(boxes)
    masks = pixel_box_masks(boxes, image_hw).numpy() if len(boxes) else []
    return paint_by_box_area(masks, boxes, labels, image_hw)


def grabcut_mask(image_bgr: np.ndarray,
                 box: Sequence[float],
                 iterations: int = 5,
                 margin: float = 0.5,
                 fill_below: Optional[float] = None) -> np.ndarray:
    """OpenCV GrabCut initialised with one box; (H, W) bool foreground.

    The model runs on the box enlarged by ``margin`` of its size on every
    side (clipped to the image): GrabCut only estimates the background colour
    model from outside the rectangle, and a local window is what the box
    tells it about; it also keeps the cost per box bounded on large images.
    A box thinner than 2 pixels is returned filled (GrabCut needs an
    interior). OpenCV's random generator (GrabCut's k-means seeding) is
    reset before each call, so a box's mask does not depend on what ran
    before it in the process (order, resume, worker processes). A
    foreground covering at most ``fill_below`` of the box (None: never) is
    replaced by the filled box (:class:`GrabCutOptions`).
    """
    H, W = image_bgr.shape[:2]
    bx1, by1, bx2, by2 = _pixel_rect(box, (H, W))
    out = np.zeros((H, W), dtype=bool)
    if bx2 - bx1 < 2 or by2 - by1 < 2:
        out[by1:by2, bx1:bx2] = True
        return out
    mx, my = int((bx2 - bx1) * margin), int((by2 - by1) * margin)
    wx1, wy1 = max(bx1 - mx, 0), max(by1 - my, 0)
    wx2, wy2 = min(bx2 + mx, W), min(by2 + my, H)
    window = np.ascontiguousarray(image_bgr[wy1:wy2, wx1:wx2])
    rect = (bx1 - wx1, by1 - wy1, bx2 - bx1, by2 - by1)
    if rect[2] >= window.shape[1] and rect[3] >= window.shape[0]:
        # no background sample around the box: nothing to contrast with
        out[by1:by2, bx1:bx2] = True
        return out
    mask = np.zeros(window.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(GRABCUT_SEED)
    try:
        cv2.grabCut(window, mask, rect, bgd, fgd, iterations,
                    cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # degenerate colour statistics (e.g. a flat image)
        out[by1:by2, bx1:bx2] = True
        return out
    fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    out[wy1:wy2, wx1:wx2] = fg
    return fill_if_kept_below(out, box, fill_below)


def _pixel_rect(box: Sequence[float],
                image_hw: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """The pixel rectangle ``(x1, y1, x2, y2)`` (end exclusive) a box covers,
    clipped to the image."""
    H, W = image_hw
    x1, y1, x2, y2 = (float(v) for v in box)
    return (int(np.floor(max(x1, 0))), int(np.floor(max(y1, 0))),
            int(np.ceil(min(x2, W))), int(np.ceil(min(y2, H))))


def fill_if_kept_below(foreground: np.ndarray, box: Sequence[float],
                       fill_below: Optional[float]) -> np.ndarray:
    """``foreground`` ((H, W) bool, one box's GrabCut mask), or the filled
    box when the mask covers at most ``fill_below`` of the box's pixels
    (None: never)."""
    if fill_below is None:
        return foreground
    x1, y1, x2, y2 = _pixel_rect(box, foreground.shape)
    if foreground.sum() > fill_below * (y2 - y1) * (x2 - x1):
        return foreground
    filled = foreground.copy()
    filled[y1:y2, x1:x2] = True
    return filled


def grabcut_masks(image_bgr: np.ndarray, boxes: ArrayLike,
                  options: GrabCutOptions) -> list:
    """:func:`grabcut_mask` of every box with ``options``."""
    return [
        grabcut_mask(image_bgr, box, options.iterations, options.margin,
                     options.fill_below) for box in _as_numpy_boxes(boxes)
    ]


def grabcut_baseline(image_bgr: np.ndarray,
                     boxes: ArrayLike,
                     labels: Sequence[int],
                     iterations: int = 5) -> np.ndarray:
    """"GrabCut": per box, its GrabCut foreground gets its class; smaller
    boxes on top."""
    boxes = _as_numpy_boxes(boxes)
    masks = [grabcut_mask(image_bgr, box, iterations) for box in boxes]
    return paint_by_box_area(masks, boxes, labels, image_bgr.shape[:2])
