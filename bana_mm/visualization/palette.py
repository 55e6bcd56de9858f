"""The PASCAL VOC colour map (index i -> RGB from the bits of i)."""
from __future__ import annotations

import numpy as np


def voc_palette(num: int = 256) -> np.ndarray:
    """(num, 3) uint8 RGB colours: 0 black, 1 dark red, ..., 255 cream."""
    palette = np.zeros((num, 3), dtype=np.uint8)
    for index in range(num):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def colorize(label_map: np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 RGB with the VOC colours."""
    return voc_palette()[np.asarray(label_map, dtype=np.uint8)]
