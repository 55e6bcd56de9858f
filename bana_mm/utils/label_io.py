"""Label-map PNG files: single-channel, pixel value = class index, 255 =
ignore, VOC palette (shared by the dataset generator, stage 2 and the
stage-3 loader)."""
from __future__ import annotations

import io
from typing import Optional

import numpy as np
from PIL import Image

from ..visualization.palette import voc_palette
from .io import atomic_write_bytes


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


def read_label_png(path: str, backend_args: Optional[dict] = None
                   ) -> np.ndarray:
    """(H, W) uint8 class-index map from a palette ('P') or 'L' PNG.

    Raises:
        FileNotFoundError / ValueError naming ``path``.
    """
    from mmengine.fileio import get
    try:
        data = get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(f'label map {path} not found') from None
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in ('P', 'L'):
            raise ValueError(f'label map {path} has mode {image.mode!r}; '
                             "expected a single-channel 'P' or 'L' PNG of "
                             'class indices')
        return np.array(image, dtype=np.uint8)
