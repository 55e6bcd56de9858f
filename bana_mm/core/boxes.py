"""Box annotation checks shared by every box dataset (registry-free)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple


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


def voc_box_to_xyxy(xmin: float, ymin: float, xmax: float,
                    ymax: float) -> Tuple[float, float, float, float]:
    """VOC XML boxes are 1-based inclusive pixel indices; return continuous
    ``(x1, y1, x2, y2)`` with exclusive ends (pixel ``xmin`` starts at
    ``xmin - 1``, pixel ``xmax`` ends at ``xmax``)."""
    return xmin - 1.0, ymin - 1.0, float(xmax), float(ymax)
