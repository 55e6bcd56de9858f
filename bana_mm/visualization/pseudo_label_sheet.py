"""One overlay sheet per image: how stage 2 got its labels (paper Fig. 3,
supplement Fig. 2).

Panels, left to right and wrapping: the input with its boxes, u0 (the
background attention unary), the per-box normalised CAM of each class, Ycrf,
Yret and the unreliable region ~S (Ycrf != Yret) in magenta over the image.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import cv2
import numpy as np

from .palette import colorize, heatmap, voc_palette

PANEL_HEIGHT = 200
COLUMNS = 4


def _blend(image: np.ndarray,
           overlay: np.ndarray,
           alpha: float = 0.6) -> np.ndarray:
    return cv2.addWeighted(overlay, alpha, image, 1 - alpha, 0)


def _text_width(text: str, font_scale: float) -> int:
    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0]


def _titled(panel: np.ndarray, title: str) -> np.ndarray:
    h, w = panel.shape[:2]
    scale = PANEL_HEIGHT / h
    panel = cv2.resize(
        panel, (max(1, int(round(w * scale))), PANEL_HEIGHT),
        interpolation=cv2.INTER_NEAREST)
    bar = np.full((22, panel.shape[1], 3), 255, np.uint8)
    room = panel.shape[1] - 8  # 4 px margins
    font_scale = 0.5  # shrunk (down to 0.3) until the title fits the panel
    while font_scale > 0.3 and _text_width(title, font_scale) > room:
        font_scale -= 0.05
    cv2.putText(bar, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def _draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                class_names: Sequence[str]) -> np.ndarray:
    out = image.copy()
    palette = voc_palette()
    for box, label in zip(boxes, labels):
        colour = tuple(int(c) for c in palette[int(label) + 1])
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colour, 2)
        name = class_names[int(label)] if label < len(class_names) \
            else str(int(label))
        cv2.putText(out, name, (x1 + 2, max(y1 + 14, 14)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return out


def tile_panels(panels: List[np.ndarray], columns: int) -> np.ndarray:
    """Panels of one height side by side, ``columns`` a row, padded white."""
    width = max(p.shape[1] for p in panels)
    padded = [
        np.pad(
            p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255)
        for p in panels
    ]
    while len(padded) % columns:
        padded.append(np.full_like(padded[0], 255))
    rows = [
        np.concatenate(padded[i:i + columns], axis=1)
        for i in range(0, len(padded), columns)
    ]
    return np.concatenate(rows, axis=0)


def pseudo_label_sheet(image_rgb: np.ndarray, boxes: np.ndarray,
                       labels: np.ndarray, class_names: Sequence[str],
                       u0: np.ndarray, class_ids: np.ndarray,
                       class_unaries: np.ndarray, ycrf: np.ndarray,
                       yret: Optional[np.ndarray]) -> np.ndarray:
    """The sheet as an (H, W, 3) uint8 RGB array.

    Args:
        image_rgb: (H, W, 3) uint8 input image.
        boxes / labels: (N, 4) xyxy pixel boxes, (N,) 0-based classes.
        u0: (H, W) background unary in [0, 1].
        class_ids / class_unaries: (K,) map ids (label + 1) and their (K, H,
            W) per-box normalised CAMs u_c.
        ycrf / yret: (H, W) label maps (0 background, label + 1).
    """
    image = np.ascontiguousarray(image_rgb, dtype=np.uint8)
    panels: List[np.ndarray] = [
        _titled(
            _draw_boxes(image,
                        np.asarray(boxes).reshape(-1, 4),
                        np.asarray(labels).reshape(-1), class_names),
            'input + boxes'),
        _titled(heatmap(u0), 'u0 (background)')
    ]
    for cid, cam in zip(np.asarray(class_ids).tolist(), class_unaries):
        name = class_names[cid - 1] if cid - 1 < len(class_names) else cid
        panels.append(_titled(_blend(image, heatmap(cam)), f'CAM {name}'))
    panels.append(_titled(_blend(image, colorize(ycrf)), 'Ycrf'))
    if yret is not None:
        panels.append(_titled(_blend(image, colorize(yret)), 'Yret'))
        unreliable = (ycrf != yret)
        marked = image.copy()
        marked[unreliable] = (255, 0, 255)
        panels.append(
            _titled(
                _blend(image, marked, 0.7),
                f'~S ({unreliable.mean():.0%} of pixels)'))
    return tile_panels(panels, COLUMNS)
