"""Retrieval labels Yret (paper §3.2, eqs. (8)-(9), SPEC §2), registry-free.

The prototype q_c (eq. 8) is the exact mean of the bilinearly upsampled
features over the image pixels where Ycrf = c, computed as
``f @ adjoint(mask)`` (no (D, H, W) tensor); C_c (eq. 9) is computed at
feature resolution and upsampled (``'maps'``) or on the upsampled features
(``'features'``, see :mod:`bana_mm.core.resample`). No CRF on Yret.
"""
from __future__ import annotations

from typing import Iterable, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .boxes import (ArrayLike, as_labels, class_box_masks, pixel_box_masks,
                    present_class_ids)
from .crf import labels_from_channels
from .resample import UPSAMPLE_MODES, BilinearResampler, similarity_maps
from .unaries import agnostic_class_ids, check_choice


def class_prototypes(
    feat: Tensor,
    label_map: ArrayLike,
    channel_ids: Tensor,
    class_weights: Optional[Tensor],
    resampler: BilinearResampler,
    agnostic: Iterable[int] = ()
) -> Tuple[Tensor, Tensor]:
    """Prototypes q_c of eq. (8) for map ids ``channel_ids`` (0 included).

    q_c = mean of the upsampled features over the pixels where the label map
    equals c (exact, via :meth:`BilinearResampler.region_means`). A class
    absent from the map falls back to its classifier weight w_c (row c of
    ``class_weights``), unless it is agnostic / has no row: then it has no
    prototype (zero vector, ``has[k] = False``).

    Returns (1 + K, D) prototypes and (1 + K,) bool ``has``.
    """
    y = torch.as_tensor(np.asarray(label_map, dtype=np.int64))
    masks = torch.stack([y == int(c) for c in channel_ids.tolist()])
    protos, counts = resampler.region_means(feat, masks)
    has = counts > 0
    agnostic = set(int(c) for c in agnostic)
    rows = 0 if class_weights is None else class_weights.shape[0]
    for k, cid in enumerate(channel_ids.tolist()):
        if not has[k] and cid not in agnostic and cid < rows:
            protos[k] = class_weights[cid].to(feat.dtype)
            has[k] = True
    return protos, has


def retrieval_maps(
        feat: Tensor,
        ycrf: ArrayLike,
        class_weights: Optional[Tensor],
        boxes: ArrayLike,
        labels: ArrayLike,
        input_hw: Optional[Tuple[int, int]] = None,
        upsample: str = 'maps',
        align_corners: bool = False,
        agnostic_classes: Iterable[int] = (),
        resampler: Optional[BilinearResampler] = None,
        norms: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Masked correlation maps of eq. (9) at image resolution.

    C_c = ReLU(cos(f, q_c)); channel 0 (background) is set to 1 outside the
    union of the boxes, class channels to 0 outside their boxes.

    Returns channel ids (1 + K,) (0 then label + 1), scores (1 + K, H, W)
    and prototypes (1 + K, D).
    """
    check_choice('upsample', upsample, UPSAMPLE_MODES)
    ycrf = np.asarray(ycrf)
    image_hw = tuple(ycrf.shape)
    if resampler is None:
        resampler = BilinearResampler(feat.shape[1:], input_hw or image_hw,
                                      image_hw, align_corners)
    labels = as_labels(labels)
    class_ids = present_class_ids(labels)
    agnostic = agnostic_class_ids(class_ids, class_weights, agnostic_classes)
    channel_ids = torch.cat([torch.zeros(1, dtype=torch.long), class_ids])
    protos, has = class_prototypes(feat, ycrf, channel_ids, class_weights,
                                   resampler, agnostic)
    if upsample == 'features' and norms is None:
        norms = resampler.feature_norms(feat)
    scores = similarity_maps(feat, protos, resampler, upsample, norms)
    scores = scores * has[:, None, None].to(scores.dtype)
    box_masks = pixel_box_masks(boxes, image_hw)
    inside = box_masks.any(dim=0)
    scores[0] = torch.where(inside, scores[0], torch.ones_like(scores[0]))
    per_class = class_box_masks(box_masks, labels, class_ids)
    scores[1:] = scores[1:] * per_class.to(scores.dtype)
    return channel_ids, scores, protos


def retrieval_labels(feat: Tensor, ycrf: ArrayLike,
                     class_weights: Optional[Tensor], boxes: ArrayLike,
                     labels: ArrayLike, **kwargs) -> np.ndarray:
    """Yret (eqs. 8-9): argmax of :func:`retrieval_maps`, ties ->
    background; (H, W) uint8 map ids. No CRF."""
    channel_ids, scores, _ = retrieval_maps(feat, ycrf, class_weights, boxes,
                                            labels, **kwargs)
    index = scores.argmax(dim=0).numpy()  # first maximum: background wins
    return labels_from_channels(index, channel_ids[1:].numpy())
