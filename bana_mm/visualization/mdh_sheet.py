"""One overlay sheet per weakly labelled image of the MDH job: what AnnNet
sees and what the pipeline made of it (MDH paper Fig. 2 and 4).

Panels: the input with its boxes, the position prior G (eq. 1-2; shown as
1 - G/255, so hot = near a box centre), the class prior, the proposal mask
(§3.1), the pseudo mask (eq. 3) and the ground truth; ignored pixels (255)
are cream, as in every picture of the project.
"""
from __future__ import annotations

import os.path as osp
from typing import List, Optional, Sequence

import numpy as np

from .palette import colorize, heatmap
from .pseudo_label_sheet import (COLUMNS, _blend, _draw_boxes, _titled,
                                 tile_panels)


def _ignored(label_map: np.ndarray) -> str:
    return f'{float((np.asarray(label_map) == 255).mean()):.0%} ignored'


def mdh_sheet(image_rgb: np.ndarray,
              boxes: np.ndarray,
              labels: np.ndarray,
              class_names: Sequence[str],
              position_prior: Optional[np.ndarray] = None,
              class_prior: Optional[np.ndarray] = None,
              proposal: Optional[np.ndarray] = None,
              pseudo: Optional[np.ndarray] = None,
              gt: Optional[np.ndarray] = None,
              columns: int = COLUMNS) -> np.ndarray:
    """The sheet as an (H, W, 3) uint8 RGB array; absent panels are left out.

    Args:
        image_rgb: (H, W, 3) uint8 image.
        boxes / labels: (N, 4) xyxy pixel boxes and (N,) 0-based classes.
        position_prior: (H, W) G in [0, 255].
        class_prior / proposal / pseudo / gt: (H, W) class-index maps
            (0 background, label + 1, 255 ignore).
    """
    image = np.ascontiguousarray(image_rgb, dtype=np.uint8)
    panels: List[np.ndarray] = [
        _titled(
            _draw_boxes(image,
                        np.asarray(boxes).reshape(-1, 4),
                        np.asarray(labels).reshape(-1), class_names),
            'input + boxes')
    ]
    if position_prior is not None:
        g = np.asarray(position_prior, dtype=np.float32) / 255.0
        panels.append(_titled(heatmap(1.0 - g), 'position prior'))
    if class_prior is not None:
        panels.append(_titled(colorize(class_prior), 'class prior'))
    for name, label_map in (('proposal', proposal), ('pseudo mask', pseudo),
                            ('ground truth', gt)):
        if label_map is not None:
            panels.append(
                _titled(
                    _blend(image, colorize(label_map)),
                    f'{name} ({_ignored(label_map)})'))
    return tile_panels(panels, columns)


def mdh_sheet_from_files(img_path: str, boxes: np.ndarray, labels: np.ndarray,
                         class_names: Sequence[str],
                         label_paths: Sequence[Optional[str]]) -> np.ndarray:
    """:func:`mdh_sheet` of one image file: priors computed from the boxes
    at the image's size (:mod:`bana_mm.core.priors`), ``label_paths`` =
    (proposal, pseudo mask, ground truth) PNGs, each left out when None or
    missing."""
    import mmcv

    from ..core.priors import class_prior, position_prior
    from ..utils.label_io import read_label_png
    image = mmcv.imread(img_path, channel_order='rgb')
    if image is None:
        raise ValueError(f'cannot read image {img_path}')
    hw = image.shape[:2]
    labels = np.asarray(labels, np.int64).reshape(-1)
    maps = [
        read_label_png(p) if p and osp.isfile(p) else None for p in label_paths
    ]
    return mdh_sheet(image, boxes, labels, class_names,
                     position_prior(boxes, hw),
                     class_prior(boxes, labels + 1, hw, 0), *maps)
