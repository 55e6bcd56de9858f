"""Label-map PNG files: single-channel, pixel value = class index, 255 =
ignore, VOC palette (shared by the dataset generator, stage 2 and the
stage-3 loader)."""
from __future__ import annotations

import io
from typing import Optional, Tuple

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


def check_label_map(label_map: np.ndarray,
                    path: str,
                    num_classes: Optional[int] = None,
                    image_hw: Optional[Tuple[int, int]] = None,
                    image_path: Optional[str] = None) -> None:
    """One rule for a class-index map read from ``path`` (stage 3, MDH,
    scoring): it has its image's size ``image_hw`` and only values
    ``< num_classes`` or 255 (each check skipped when its argument is None).

    Raises:
        ValueError naming ``path``, its image and both sizes, or the values.
    """
    if image_hw is not None and tuple(label_map.shape[:2]) != tuple(
            image_hw[:2]):
        raise ValueError(
            f'label map {path} is {label_map.shape[1]}x{label_map.shape[0]} '
            f'(WxH) but its image {image_path} is {image_hw[1]}x'
            f'{image_hw[0]}')
    if num_classes is not None:
        check_label_values(label_map, num_classes, path)


def read_checked_label_png(path: str,
                           num_classes: Optional[int] = None,
                           image_path: Optional[str] = None) -> np.ndarray:
    """:func:`read_label_png` then :func:`check_label_map` against the
    image's size as decoded (read from ``image_path``'s header)."""
    from .io import image_size
    label_map = read_label_png(path)
    size = image_size(image_path) if image_path else None
    check_label_map(label_map, path, num_classes, None if size is None else
                    (size[1], size[0]), image_path)
    return label_map
