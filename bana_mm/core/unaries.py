"""Unaries of stage 2 (paper §3.2, eqs. (5)-(7), SPEC §2), registry-free.

u0 is the background attention of eq. (7) (one background query, N = 1)
with only confident background kept inside the boxes; u_c is the CAM of
class c (eq. 6) normalised per box (eq. 5). Maps are at image resolution
(see :mod:`bana_mm.core.resample` for where they are computed); everything
that depends on the boxes is done at image resolution, where the boxes are
defined, so a box smaller than a feature cell still gets a unary.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .boxes import class_box_masks, pixel_box_masks
from .resample import BilinearResampler, cam_maps, similarity_maps

THRESHOLD_REFERENCES = ('similarity', 'boxes')
BACKGROUND_MODES = ('attention', 'cam')
#: What the class-agnostic unary 1 - u of an unseen class subtracts: ``'u0'``
#: the background unary after the 0.99 x max threshold, ``'attention'`` the
#: unthresholded attention A of eqs. (2)-(3).
AGNOSTIC_UNARIES = ('u0', 'attention')


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """Raise a ValueError naming the option unless ``value`` in ``choices``."""
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


def threshold_attention(similarity: Optional[Tensor],
                        inside: Tensor,
                        threshold: float = 0.99,
                        reference: str = 'similarity',
                        valid: Optional[Tensor] = None) -> Tensor:
    """u0 = A (eq. 7) keeping only confident background inside the boxes.

    A = ``similarity`` inside the boxes and 1 outside (eq. 3); inside the
    boxes every value below ``threshold * ref`` is set to 0 (the others are
    kept as they are). ``ref`` is the maximum of the similarity map before
    the outside-box fill, over the whole image (``'similarity'``, the
    authors' ``bg_attn[bg_attn < 0.99 * bg_attn.max()] = 0``) or inside the
    boxes only (``'boxes'``), over ``valid`` (real image) positions.
    ``similarity=None`` (no background to query) gives u0 = 0 inside the
    boxes and 1 outside.
    """
    check_choice('reference', reference, THRESHOLD_REFERENCES)
    if similarity is None:
        similarity = torch.zeros(inside.shape)
    a = torch.where(inside, similarity, torch.ones_like(similarity))
    region = (torch.ones_like(inside) if valid is None else valid)
    if reference == 'similarity':
        pool = similarity[region]
    else:
        pool = similarity[region & inside]
    ref = pool.max() if pool.numel() else a.new_zeros(())
    drop = inside & (a < threshold * ref)
    return torch.where(drop, torch.zeros_like(a), a)


def normalise_per_box(cams: Tensor, box_masks: Tensor,
                      box_channels: Tensor) -> Tensor:
    """u_c of eq. (5): each box's CAM divided by its max inside the box.

    Args:
        cams: (K, h, w) non-negative CAMs of the present classes.
        box_masks: (N, h, w) bool box masks.
        box_channels: (N,) channel 0..K-1 of each box's class.

    Returns (K, h, w): 0 outside the boxes of each class, the max where
    boxes of one class overlap, 0 for a box whose CAM max is 0 (or which
    covers no position).
    """
    out = torch.zeros_like(cams)
    for mask, k in zip(box_masks,
                       box_channels.tolist()):  # one (h, w) at a time
        values = cams[k][mask]
        peak = values.max() if values.numel() else values.new_zeros(())
        if peak > 0:  # CAMs are >= 0
            scaled = torch.where(mask, cams[k] / peak,
                                 torch.zeros_like(cams[k]))
            out[k] = torch.maximum(out[k], scaled)
    return out


def agnostic_class_ids(class_ids: Tensor, class_weights: Optional[Tensor],
                       agnostic_classes: Iterable[int]) -> set:
    """Map ids that have no usable classifier weight."""
    rows = 0 if class_weights is None else class_weights.shape[0]
    explicit = {int(c) + 1 for c in agnostic_classes}
    return {
        cid
        for cid in class_ids.tolist() if cid in explicit or cid >= rows
    }


def _class_channels(class_ids: Tensor, labels: Tensor) -> Tensor:
    lut = {cid: k for k, cid in enumerate(class_ids.tolist())}
    return torch.tensor([lut[int(c) + 1] for c in labels.tolist()],
                        dtype=torch.long)


def agnostic_background(u0: Tensor,
                        similarity: Optional[Tensor],
                        inside: Tensor,
                        mode: str = 'u0') -> Tensor:
    """The background map b whose complement 1 - b is the class-agnostic
    unary of an unseen class (paper §4.2 "1 - u0"; eq. (7) of the
    reproduction report).

    ``'u0'``: b = u0 of eq. (7) as it enters the CRF, i.e. after the
    0.99 x max threshold (:func:`threshold_attention`), so 1 - b is 1 inside
    the boxes except at confident background. ``'attention'``: b = A of eqs.
    (2)-(3) with the single query, unthresholded: ``similarity`` inside the
    boxes (0 there when there is no background to query), 1 outside.
    """
    check_choice('agnostic_unary', mode, AGNOSTIC_UNARIES)
    if mode == 'u0':
        return u0
    if similarity is None:
        similarity = torch.zeros_like(u0)
    return torch.where(inside, similarity, torch.ones_like(similarity))


def _assemble_class_unaries(cams: Tensor, box_masks: Tensor, labels: Tensor,
                            class_ids: Tensor, agnostic: set,
                            background: Optional[Tensor]) -> Tensor:
    """Per-box normalised CAMs (eq. 5); 1 - ``background`` inside the boxes
    of agnostic classes (see :func:`agnostic_background`)."""
    out = normalise_per_box(cams, box_masks,
                            _class_channels(class_ids, labels))
    if agnostic:
        if background is None:
            raise ValueError('class-agnostic classes need a background map')
        per_class = class_box_masks(box_masks, labels, class_ids)
        for k, cid in enumerate(class_ids.tolist()):
            if cid in agnostic:
                out[k] = torch.where(per_class[k], 1.0 - background,
                                     torch.zeros_like(background))
    return out


def _weight_rows(class_weights: Optional[Tensor], class_ids: Tensor,
                 agnostic: set, dim: int) -> Tensor:
    """Rows w_c of the present classes (zeros for agnostic ones)."""
    rows = torch.zeros((len(class_ids), dim))
    for k, cid in enumerate(class_ids.tolist()):
        if cid not in agnostic:
            rows[k] = class_weights[cid]
    return rows


def background_cam_unary(cam0: Tensor, inside: Tensor) -> Tensor:
    """Background channel of the ``Ycrf w/o u0`` ablation (paper Table 1,
    SPEC §2): u0 of eq. (7) replaced by the background-class CAM
    ReLU(f . w_0), taken inside the boxes like the object CAMs and divided
    by its max there (0 there if that max is 0); 1 outside the boxes."""
    values = cam0[inside]
    peak = values.max() if values.numel() else cam0.new_zeros(())
    scaled = cam0 / peak if peak > 0 else torch.zeros_like(cam0)
    return torch.where(inside, scaled, torch.ones_like(cam0))


def image_unaries(feat: Tensor, class_weights: Optional[Tensor], boxes: Tensor,
                  labels: Tensor, class_ids: Tensor, agnostic: set,
                  resampler: BilinearResampler, cfg,
                  norms: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """u0 (eq. 7 with the threshold), u_c (eqs. 5-6; 1 - u0 or 1 - A for
    agnostic classes, ``cfg.agnostic_unary``) and the union of the boxes,
    all at image resolution. ``cfg`` is a ``PseudoLabelConfig``."""
    image_hw = resampler.image_hw
    box_masks = pixel_box_masks(boxes, image_hw)
    inside = box_masks.any(dim=0)
    similarity = None
    if not inside.all():
        query, _ = resampler.region_means(feat, (~inside)[None])
        similarity = similarity_maps(feat, query, resampler, cfg.upsample,
                                     norms)[0]
    u0 = threshold_attention(similarity, inside, cfg.threshold,
                             cfg.threshold_reference)
    weights = _weight_rows(class_weights, class_ids, agnostic,
                           feat.shape[0]).to(feat.dtype)
    cams = cam_maps(feat, weights, resampler, cfg.upsample)
    background = agnostic_background(u0, similarity, inside,
                                     cfg.agnostic_unary)
    unaries = _assemble_class_unaries(cams, box_masks, labels, class_ids,
                                      agnostic, background)
    return u0, unaries, inside
