"""Background-aware pooling (BAP), paper §3.1, SPEC §1. Registry-free torch
code.

All functions work on one image: a feature map ``feat`` of shape (D, h, w) and
boxes in input-pixel coordinates ``(x1, y1, x2, y2)`` (continuous, ``x2``
exclusive). Boxes are brought to feature resolution with nearest-neighbour
sampling, as the paper states: feature cell ``i`` looks at input pixel
``floor(i * H / h)``, which is what ``F.interpolate(mode='nearest')`` of an
input-resolution box mask gives. A box narrower than about one stride then
has no cell: its RoI bins fall back to plain averages of the features (see
:func:`weighted_box_pool`) instead of pooling to a zero vector.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .boxes import box_masks_at

#: Definite-background share of the crop at or below which BAP falls back to
#: GAP.
DEFAULT_MIN_BACKGROUND_SHARE = 0.125


def definite_background(box_masks: Tensor,
                        valid: Optional[Tensor] = None) -> Tensor:
    """M of paper §3.1: 1 where no box covers the cell (and the cell is image).

    Args:
        box_masks: (K, h, w) bool box masks (K may be 0).
        valid: optional (h, w) bool mask of real image cells; padding added by
            the data pipeline is neither box nor background.
    """
    background = ~box_masks.any(dim=0)
    if valid is not None:
        background = background & valid
    return background


def grid_queries(feat: Tensor, background: Tensor,
                 grid_size: int) -> Tuple[Tensor, Tensor]:
    """Background queries q_j of eq. (1) on an N x N grid.

    The map is padded with zeros (no background) to a multiple of N and split
    into N x N equal cells; q_j is the mean feature over the background cells
    of cell j. A cell is valid if it holds at least one background cell.

    Returns:
        queries (N*N, D) (zeros for invalid cells) and valid (N*N,) bool.
    """
    D, h, w = feat.shape
    n = grid_size
    ph, pw = math.ceil(h / n) * n, math.ceil(w / n) * n
    weight = background.to(feat.dtype)
    masked = F.pad(feat * weight, (0, pw - w, 0, ph - h))
    weight = F.pad(weight, (0, pw - w, 0, ph - h))
    ch, cw = ph // n, pw // n
    sums = masked.reshape(D, n, ch, n, cw).sum(dim=(2, 4))  # (D, n, n)
    counts = weight.reshape(n, ch, n, cw).sum(dim=(1, 3))  # (n, n)
    valid = counts.flatten() > 0
    queries = sums.flatten(1).t() / counts.flatten().clamp(min=1)[:, None]
    return queries, valid


def background_attention(feat: Tensor, queries: Tensor,
                         inside_boxes: Tensor) -> Tensor:
    """Attention map A of eqs. (2)-(3).

    A(p) = mean_j ReLU(cos(f(p), q_j)) inside the boxes, 1 outside. With no
    query (J = 0) A is 0 inside the boxes, i.e. every box pixel counts as
    foreground, which is the GAP behaviour.

    Args:
        feat: (D, h, w) features.
        queries: (J, D) valid background queries.
        inside_boxes: (h, w) bool union of the boxes.
    """
    if queries.shape[0] == 0:
        inside = torch.zeros(
            feat.shape[1:], dtype=feat.dtype, device=feat.device)
    else:
        f = F.normalize(feat.flatten(1), dim=0)  # (D, h*w)
        q = F.normalize(queries, dim=1)  # (J, D)
        inside = (q @ f).relu().mean(dim=0).reshape(feat.shape[1:])
    return torch.where(inside_boxes, inside, torch.ones_like(inside))


def _feature_rois(boxes: Tensor, input_hw: Tuple[int, int],
                  feat_hw: Tuple[int, int]) -> Tensor:
    """(K, 5) mmcv RoIs ``(0, x1, y1, x2, y2)`` in feature coordinates.

    Boxes are scaled per axis (the stride may differ slightly between axes
    for odd sizes), so RoIAlign then runs at scale 1.
    """
    (H, W), (h, w) = input_hw, feat_hw
    scale = boxes.new_tensor([w / W, h / H] * 2)
    return torch.cat([boxes.new_zeros((boxes.shape[0], 1)), boxes * scale],
                     dim=1)


def _roi_align_bins(maps: Tensor, rois: Tensor,
                    roi_size: Sequence[int]) -> Tensor:
    """mmcv RoIAlign (aligned, adaptive sampling, average) of (C, h, w) maps
    -> (K, ph*pw, C), bins in row-major order."""
    from mmcv.ops import roi_align
    pooled = roi_align(maps[None], rois.to(maps.dtype), tuple(roi_size), 1.0,
                       0, 'avg', True)  # (K, C, ph, pw)
    return pooled.flatten(2).transpose(1, 2)


def weighted_box_pool(feat: Tensor,
                      weight: Tensor,
                      boxes: Tensor,
                      input_hw: Tuple[int, int],
                      roi_size: Optional[Sequence[int]] = (2, 2),
                      eps: float = 1e-6) -> Tensor:
    """Foreground features r_i of eq. (4), weighted by ``weight = 1 - A``.

    Eq. (4) is 0/0 where the pooled weight vanishes. Eq. (3) sets A = 1
    outside the nearest-sampled boxes, so this happens to every bin of a
    box narrower than about one feature stride (it has no cell of its own)
    and to the bins of small boxes that sample only cells outside it; it
    also happens in a box whose attention is 1 throughout. Such a bin (pooled
    weight below ``eps``) takes the plain average of the features over the
    same region, i.e. eq. (4) with A = 0 (GAP, as the paper notes under
    eq. (4)), so it carries the object's features and a gradient instead of
    a zero vector. Bins with a pooled weight of at least ``eps`` are the
    weighted average of eq. (4), as before.

    Args:
        feat: (D, h, w) features.
        weight: (h, w) pooling weight (1 - A); all ones gives GAP.
        boxes: (K, 4) boxes in input pixels.
        input_hw: (H, W) of the network input.
        roi_size: ``(ph, pw)`` pools each box into a ph x pw grid with mmcv's
            RoIAlign applied to ``weight * feat`` and ``weight`` (their ratio
            is a weighted average per bin, paper footnote 2; the authors use
            (2, 2)); a bin with no weight takes RoIAlign of ``feat``.
            ``None`` gives the exact eq. (4): one vector per box over its
            nearest-sampled cells; with no weight there, their plain mean,
            and for a box with no cell at all RoIAlign (1 x 1) of ``feat``.
        eps: pooled weights below this count as 0 (no division by ~0).

    Returns:
        (K, ph*pw, D) pooled vectors (``(K, 1, D)`` for ``roi_size=None``).
    """
    D, h, w = feat.shape
    if boxes.shape[0] == 0:
        bins = 1 if roi_size is None else roi_size[0] * roi_size[1]
        return feat.new_zeros((0, bins, D))
    rois = _feature_rois(boxes, input_hw, (h, w))
    if roi_size is None:
        masks = box_masks_at(boxes, input_hw, (h, w)).to(feat.dtype)
        weighted = masks * weight[None]  # (K, h, w)
        num = torch.einsum('khw,dhw->kd', weighted, feat)
        den = weighted.flatten(1).sum(dim=1, keepdim=True)
        vectors = num / den.clamp(min=eps)
        empty = den < eps  # (K, 1)
        if empty.any():
            cells = masks.flatten(1).sum(dim=1, keepdim=True)
            cell_mean = torch.einsum('khw,dhw->kd', masks,
                                     feat) / cells.clamp(min=1)
            plain = torch.where(cells > 0, cell_mean,
                                _roi_align_bins(feat, rois, (1, 1))[:, 0])
            vectors = torch.where(empty, plain, vectors)
        return vectors[:, None, :]
    stacked = torch.cat([feat * weight[None], weight[None]], dim=0)
    pooled = _roi_align_bins(stacked, rois, roi_size)  # (K, bins, D+1)
    num, den = pooled[..., :D], pooled[..., D:]
    vectors = num / den.clamp(min=eps)
    empty = den < eps  # (K, bins, 1)
    if empty.any():
        rows = empty.flatten(1).any(dim=1)  # boxes with an empty bin
        plain = vectors.clone()
        plain[rows] = _roi_align_bins(feat, rois[rows], roi_size)
        vectors = torch.where(empty, plain, vectors)
    return vectors


def background_aware_pool(
    feat: Tensor,
    boxes: Tensor,
    input_hw: Tuple[int, int],
    valid: Optional[Tensor] = None,
    grid_size: int = 4,
    roi_size: Optional[Sequence[int]] = (2, 2),
    use_attention: bool = True,
    min_background_share: float = DEFAULT_MIN_BACKGROUND_SHARE,
) -> dict:
    """BAP for one image: queries, attention and pooled box features.

    Args:
        feat: (D, h, w) features.
        boxes: (K, 4) boxes in input pixels.
        input_hw: (H, W) of the (padded) network input.
        valid: optional (h, w) bool mask of non-padding cells.
        grid_size: N of the N x N query grid (4 to train, 1 for pseudo labels).
        roi_size: see :func:`weighted_box_pool`.
        use_attention: False gives the GAP baseline (A = 0, no queries).
        min_background_share: fall back to GAP pooling when the definite
            background covers at most this share of the image cells, or when
            no grid cell is valid (SPEC §1). The valid queries are still
            returned in that case.

    Returns:
        dict with ``box_feats`` (K, bins, D), ``queries`` (J, D) valid
        background queries, ``attention`` (h, w) A, ``background`` (h, w) M,
        ``fallback`` (bool) whether the boxes were pooled with GAP.
    """
    h, w = feat.shape[1:]
    masks = box_masks_at(boxes, input_hw, (h, w))
    background = definite_background(masks, valid)
    inside = masks.any(dim=0)
    if not use_attention:
        attention = torch.zeros((h, w), dtype=feat.dtype, device=feat.device)
        queries = feat.new_zeros((0, feat.shape[0]))
        fallback = False
    else:
        all_queries, query_valid = grid_queries(feat, background, grid_size)
        queries = all_queries[query_valid]
        image_cells = valid.sum() if valid is not None else h * w
        share = background.sum() / max(float(image_cells), 1.0)
        fallback = bool(queries.shape[0] == 0 or share <= min_background_share)
        attention = background_attention(feat, queries, inside)
    pool_weight = (torch.ones_like(attention) if fallback else 1.0 - attention)
    box_feats = weighted_box_pool(feat, pool_weight, boxes, input_hw, roi_size)
    return dict(
        box_feats=box_feats,
        queries=queries,
        attention=attention,
        background=background,
        fallback=fallback)


def prototype_classifier_rows(sums: Tensor,
                              counts: Tensor,
                              mean_norm: float,
                              logit_scale: float = 10.0) -> Tensor:
    """Classifier rows at the class prototypes (an initialisation choice,
    not in the paper; docs/stage1.md).

    Row ``c`` is the mean pooled vector of class ``c`` (row 0: the
    background queries), scaled to length ``logit_scale / mean_norm``, so a
    vector of the average length gets the logit ``logit_scale * cos``.

    Args:
        sums: (L+1, D) summed pooled vectors per class.
        counts: (L+1, ) how many vectors each sum holds; rows with 0 are
            returned as NaN (the caller keeps their initial weights).
        mean_norm: the mean L2 norm of the pooled vectors.
        logit_scale: logit of a vector of length ``mean_norm`` at cos 1.

    Returns:
        (L+1, D) rows.
    """
    if sums.dim() != 2 or counts.shape != sums.shape[:1]:
        raise ValueError(f'sums (L+1, D) and counts (L+1,) expected, got '
                         f'{tuple(sums.shape)} and {tuple(counts.shape)}')
    if not mean_norm > 0:
        raise ValueError(f'mean_norm must be > 0, got {mean_norm}')
    means = sums / counts.clamp(min=1).to(sums.dtype)[:, None]
    rows = F.normalize(means, dim=1) * (logit_scale / mean_norm)
    rows[counts == 0] = float('nan')
    return rows
