"""Colours shared by every picture: the PASCAL VOC colour map (index i ->
RGB from the bits of i; 255, "ignore", is cream) and a heat map."""
from __future__ import annotations

import cv2
import numpy as np

from ..utils.label_io import voc_palette

_VOC = voc_palette()


def colorize(label_map: np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 RGB with the VOC colours."""
    return _VOC[np.asarray(label_map, dtype=np.uint8)]


def heatmap(values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 RGB jet colours."""
    scaled = np.clip(np.nan_to_num(values) * 255.0, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(
        cv2.applyColorMap(scaled, cv2.COLORMAP_JET)[..., ::-1])
