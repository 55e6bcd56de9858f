"""Label-map PNG files: single-channel, pixel value = class index, 255 =
ignore, VOC palette (shared by the dataset generator, stage 2 and the
stage-3 loader)."""
from __future__ import annotations

import io
from typing import Optional

import numpy as np
from PIL import Image

from .io import atomic_write_bytes

IGNORE_INDEX = 255


def voc_palette(num: int = 256) -> np.ndarray:
    """(num, 3) uint8 RGB colours of the PASCAL VOC colour map (index i ->
    RGB from the bits of i): 0 black, 1 dark red, ..., 255 cream."""
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


def label_png_bytes(label_map: np.ndarray) -> bytes:
    """Palette PNG (VOC colours) of an (H, W) class-index map."""
    image = Image.fromarray(np.asarray(label_map, dtype=np.uint8), mode='P')
    image.putpalette(voc_palette().reshape(-1).tolist())
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    return buffer.getvalue()


def write_label_png(path: str, label_map: np.ndarray) -> None:
    """:func:`label_png_bytes` written atomically to ``path``."""
    atomic_write_bytes(path, label_png_bytes(label_map))


def read_label_png(path: str,
                   backend_args: Optional[dict] = None) -> np.ndarray:
    """(H, W) uint8 class-index map from a palette ('P') or 'L' PNG.

    Raises:
        FileNotFoundError / ValueError naming ``path`` (missing, not an
        image, truncated, colour image).
    """
    from mmengine.fileio import get
    try:
        data = get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(f'label map {path} not found') from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            mode = image.mode
            if mode in ('P', 'L'):
                return np.array(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as err:  # PIL decode errors
        raise ValueError(f'label map {path} is not a readable PNG '
                         f'({len(data)} bytes: {err})') from None
    raise ValueError(f'label map {path} has mode {mode!r}; expected a '
                     "single-channel 'P' or 'L' PNG of class indices")


def check_label_values(label_map: np.ndarray, num_classes: int,
                       path: str) -> None:
    """Every pixel is a class index ``< num_classes`` or 255 (ignore).

    Raises:
        ValueError naming ``path`` and the offending values (a loss would
        otherwise fail later with an index error naming neither).
    """
    counts = np.bincount(
        np.asarray(label_map, np.uint8).ravel(), minlength=256)
    counts[IGNORE_INDEX] = 0
    bad = np.nonzero(counts[num_classes:])[0] + num_classes
    if bad.size:
        shown = ', '.join(f'{v} ({counts[v]} px)' for v in bad[:10])
        raise ValueError(
            f'label map {path} has values outside the {num_classes} classes '
            f'(0..{num_classes - 1}, 255 = ignore): {shown}')
