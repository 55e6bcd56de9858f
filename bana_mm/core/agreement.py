"""Agreement-only mask loss for Mask R-CNN on two pseudo masks (paper §4.3).

Mask R-CNN's per-class binary mask head has no classifier weights from which
the noise-aware loss could build its confidence sigma, so on COCO the paper
trains the mask branch only where the instance's ``Ycrf`` mask and its
``Yret`` mask agree (both foreground or both background), normalised by the
number of such pixels (SPEC §4).

The two masks travel through mmdet's transforms as ONE uint8 bitmap
``A + 2 * B`` (A = Ycrf, B = Yret): every geometric op mmdet applies to
``BitmapMasks`` (nearest resize, flip, crop, pad, translate) maps values to
values, so the pair stays aligned pixel for pixel. Unpack before any
interpolating op (RoIAlign of targets).

Registry-free: plain numpy / torch.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch.nn.functional as F
from torch import Tensor

#: bit of the packed mask that holds each source.
YCRF_BIT = 1
YRET_BIT = 2


def pack_mask_pair(ycrf: np.ndarray, yret: np.ndarray) -> np.ndarray:
    """Pack two binary masks of equal shape into ``ycrf + 2 * yret`` (uint8).

    Raises:
        ValueError: on a shape mismatch or non-binary values.
    """
    a = np.asarray(ycrf)
    b = np.asarray(yret)
    if a.shape != b.shape:
        raise ValueError(f'mask pair of different shapes: Ycrf {a.shape} vs '
                         f'Yret {b.shape}')
    for name, m in (('Ycrf', a), ('Yret', b)):
        if m.size and (m.min() < 0 or m.max() > 1):
            raise ValueError(f'{name} mask is not binary (values in '
                             f'[{m.min()}, {m.max()}])')
    return (a.astype(np.uint8) * YCRF_BIT + b.astype(np.uint8) * YRET_BIT)


def unpack_mask_pair(packed: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_mask_pair`: ``(ycrf, yret)`` uint8 0/1 masks.

    Raises:
        ValueError: if a value is outside 0..3 (not a packed pair).
    """
    p = np.asarray(packed)
    if p.size and (p.min() < 0 or p.max() > YCRF_BIT + YRET_BIT):
        raise ValueError('packed mask pair must hold values 0..3, got '
                         f'[{p.min()}, {p.max()}]')
    p = p.astype(np.uint8)
    return (p & YCRF_BIT) // YCRF_BIT, (p & YRET_BIT) // YRET_BIT


def agreement_mask_loss(logits: Tensor,
                        ycrf: Tensor,
                        yret: Tensor,
                        loss_weight: float = 1.0) -> Tensor:
    """Binary cross-entropy over pixels where the two masks agree (§4.3).

    Args:
        logits: (N, h, w) mask logits of each positive RoI for its class.
        ycrf / yret: (N, h, w) binary mask targets of the RoIs (any dtype).
        loss_weight: multiplier of the loss.

    Returns:
        ``loss_weight * sum_{agree} BCE(logits, ycrf) / #agree`` over all
        RoIs of the batch (a scalar). With identical masks this is mmdet's
        mask loss (mean BCE over all RoI pixels). With no agreeing pixel (or
        no RoI) it is 0, connected to the graph, never NaN.
    """
    if logits.shape != ycrf.shape or logits.shape != yret.shape:
        raise ValueError(f'shape mismatch: logits {tuple(logits.shape)}, '
                         f'Ycrf {tuple(ycrf.shape)}, Yret {tuple(yret.shape)}')
    target = ycrf.to(logits.dtype)
    agree = (ycrf > 0.5) == (yret > 0.5)
    per_pixel = F.binary_cross_entropy_with_logits(
        logits, target, reduction='none')
    count = agree.sum()
    if count == 0:
        return logits.sum() * 0.0
    return loss_weight * (per_pixel * agree).sum() / count
