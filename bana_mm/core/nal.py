"""Noise-aware loss (NAL) and its baselines, paper §3.3, SPEC §3.
Registry-free.

Shapes: features ``phi`` (B, D, h, w), classifier weight ``W`` (C, D) (a 1x1
conv weight (C, D, 1, 1) is accepted too), score maps (B, C, H, W), label maps
``ycrf`` / ``yret`` (B, H, W) of class indices with ``ignore_index`` (255).

The classifier runs at feature resolution; the losses run at label resolution
on score maps upsampled bilinearly (:func:`upsample_to`), so the regions S and
~S of eqs. (10) and (13) are the label pixels. A bilinear upsampling of a
cosine map is a convex combination of cosines, so it stays in [-1, 1] and
D_c = 1 + cos of eq. (11) stays non-negative.

Normalisation is over the whole batch: L_ce is the mean over all S pixels of
the batch and L_wce divides by the sum of sigma over all ~S pixels of the
batch, as eqs. (10) and (13) read with the batch as one set of pixels. A term
whose region is empty is exactly 0 (with zero, finite gradients).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: Label value that marks pixels without a pseudo label.
IGNORE_INDEX = 255

#: ``mode`` values of :func:`region_loss` (paper Table 3 and SPEC §3).
REGION_LOSS_MODES = ('nal', 'ignore', 'entropy', 'bootstrap', 'ce_crf',
                     'ce_ret')


# ------------------------------------------------------------- classifiers
def _flat_weight(weight: Tensor) -> Tensor:
    """(C, D) view of a classifier weight given as (C, D) or (C, D, 1, 1)."""
    if weight.dim() == 4:
        if weight.shape[2:] != (1, 1):
            raise ValueError('expected a 1x1 conv weight, got shape '
                             f'{tuple(weight.shape)}')
        weight = weight.flatten(1)
    if weight.dim() != 2:
        raise ValueError(
            f'expected a (C, D) weight, got {tuple(weight.shape)}')
    return weight


def cosine_map(phi: Tensor, weight: Tensor, eps: float = 1e-12) -> Tensor:
    """cos(phi(p), W_c) for every class, eq. (11) without the "+1".

    Args:
        phi: (B, D, h, w) features.
        weight: (C, D) or (C, D, 1, 1) classifier weight (no bias).
        eps: norm floor of :func:`torch.nn.functional.normalize`; a zero
            feature (or weight) gives cosine 0, not NaN.

    Returns:
        (B, C, h, w) cosines in [-1, 1].
    """
    w = F.normalize(_flat_weight(weight), dim=1, eps=eps)
    f = F.normalize(phi, dim=1, eps=eps)
    return torch.einsum('bdhw,cd->bchw', f, w)


def cosine_logits(phi: Tensor, weight: Tensor, tau: float = 20.0) -> Tensor:
    """Cosine-similarity classifier, supplement eq. (3): tau * cos(phi, W_c).

    Returns (B, C, h, w) logits; softmax over C gives H.
    """
    return tau * cosine_map(phi, weight)


def dot_logits(phi: Tensor, weight: Tensor) -> Tensor:
    """Dot-product ("DP") classifier without bias, supplement eq. (2).

    Returns (B, C, h, w) logits phi(p) . W_c.
    """
    return torch.einsum('bdhw,cd->bchw', phi, _flat_weight(weight))


def upsample_to(x: Tensor,
                size: Sequence[int],
                align_corners: bool = False) -> Tensor:
    """Bilinear upsampling of a (B, C, h, w) score/cosine map to ``size``.

    This is how cosine maps reach label resolution before the losses (SPEC
    §3). ``align_corners`` defaults to False like mmseg's decode heads; the
    map is returned unchanged when it already has the size.
    """
    size = tuple(int(s) for s in size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(
        x, size=size, mode='bilinear', align_corners=align_corners)


# ----------------------------------------------------------------- regions
def split_regions(ycrf: Tensor,
                  yret: Tensor,
                  ignore_index: int = IGNORE_INDEX) -> Tuple[Tensor, Tensor]:
    """Reliable region S and unreliable region ~S (paper §3.3).

    S: Ycrf == Yret and neither is ``ignore_index``. ~S: Ycrf != Yret and
    Ycrf is not ``ignore_index`` (a pixel ignored only by Yret is in ~S).

    Returns:
        two bool tensors of the labels' shape, disjoint.
    """
    if ycrf.shape != yret.shape:
        raise ValueError(f'Ycrf {tuple(ycrf.shape)} and Yret '
                         f'{tuple(yret.shape)} differ in shape')
    crf_valid = ycrf != ignore_index
    same = ycrf == yret
    return same & crf_valid, ~same & crf_valid


def _safe_labels(labels: Tensor, ignore_index: int) -> Tensor:
    """Labels with ``ignore_index`` replaced by 0, usable as gather indices."""
    return torch.where(labels == ignore_index, torch.zeros_like(labels),
                       labels).long()


def _label_score(scores: Tensor, labels: Tensor) -> Tensor:
    """scores[b, labels[b, y, x], y, x] -> (B, H, W)."""
    return scores.gather(1, labels[:, None]).squeeze(1)


def _check_sizes(scores: Tensor, labels: Tensor, what: str) -> None:
    if scores.dim() != 4 or labels.dim() != 3 or \
            scores.shape[0] != labels.shape[0] or \
            scores.shape[2:] != labels.shape[1:]:
        raise ValueError(
            f'{what} {tuple(scores.shape)} does not match labels '
            f'{tuple(labels.shape)}: expected (B, C, H, W) and (B, H, W); '
            'upsample the map to the label size first (upsample_to)')


# ------------------------------------------------------------- confidence
def sigma_from_scores(top: Tensor,
                      own: Tensor,
                      ycrf: Tensor,
                      gamma: float = 7.0,
                      ignore_index: int = IGNORE_INDEX) -> Tensor:
    """sigma of eq. (12) from per-pixel cosines (B, H, W).

    ``top`` = max_c cos(phi, W_c) and ``own`` = cos(phi, W_{Ycrf}); then
    D_own / max_c D_c = (1 + own) / (1 + top). Working on these two maps
    (instead of the full (B, C, H, W) D) keeps the loss cheap.
    """
    top = 1.0 + top
    own = 1.0 + own
    positive = top > 0
    ratio = own / torch.where(positive, top, torch.ones_like(top))
    ratio = torch.where(positive, ratio, torch.zeros_like(ratio))
    sigma = ratio.pow(gamma)  # own <= top, so the ratio is in [0, 1]
    return torch.where(ycrf != ignore_index, sigma, torch.zeros_like(sigma))


def confidence_from_cos(cos: Tensor,
                        ycrf: Tensor,
                        gamma: float = 7.0,
                        ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Confidence sigma of eq. (12) from a cosine map of any resolution.

    sigma(p) = (D_{Ycrf(p)}(p) / max_c D_c(p))^gamma, D_c = 1 + cos (eq. 11),
    max over all C classes. A label tied with the max gives exactly 1.
    Pixels with Ycrf == ``ignore_index`` get 0; so does the degenerate pixel
    where every D_c is 0.

    Args:
        cos: (B, C, H, W) cosines at the resolution of ``ycrf``.
        ycrf: (B, H, W) labels.

    Returns:
        (B, H, W) sigma in [0, 1], differentiable w.r.t. ``cos``.
    """
    _check_sizes(cos, ycrf, 'cosine map')
    top = cos.max(dim=1).values
    own = _label_score(cos, _safe_labels(ycrf, ignore_index))
    return sigma_from_scores(top, own, ycrf, gamma, ignore_index)


def confidence_map(phi: Tensor,
                   weight: Tensor,
                   ycrf: Tensor,
                   gamma: float = 7.0,
                   detach: bool = False,
                   ignore_index: int = IGNORE_INDEX) -> Tensor:
    """sigma of eqs. (11)-(12) at the resolution of ``phi``.

    Args:
        phi: (B, D, h, w) features.
        weight: (C, D) or (C, D, 1, 1) classifier weight.
        ycrf: (B, h, w) labels at feature resolution (downsample them with
            nearest first if needed). The loss itself works at label
            resolution: see :func:`noise_aware_loss`.
        detach: return sigma without a graph.

    Returns:
        (B, h, w) sigma.
    """
    sigma = confidence_from_cos(
        cosine_map(phi, weight), ycrf, gamma, ignore_index)
    return sigma.detach() if detach else sigma


# ------------------------------------------------------------------ losses
def _weighted_mean(values: Tensor,
                   mask: Tensor,
                   weight: Optional[Tensor] = None) -> Tensor:
    """sum(weight * values over mask) / sum(weight over mask); 0 if empty.

    With ``weight=None`` this is the mean over the mask. An empty mask or a
    zero weight sum gives an exact 0 whose gradient is 0 (never NaN).
    """
    if weight is None:
        weight = torch.ones_like(values)
    weight = torch.where(mask, weight, torch.zeros_like(weight))
    num = torch.where(mask, weight * values, torch.zeros_like(values)).sum()
    den = weight.sum()
    nonzero = den > 0
    safe_den = torch.where(nonzero, den, torch.ones_like(den))
    return torch.where(nonzero, num / safe_den, torch.zeros_like(num))


def _pixel_ce(logits: Tensor, labels: Tensor, ignore_index: int) -> Tensor:
    """Per-pixel CE -log H_label (B, H, W) in fp32, 0 at ignored pixels.

    Uses the fused ``F.cross_entropy`` (log-softmax + NLL), which is much
    cheaper in the backward pass than log-softmax followed by a gather.
    """
    return F.cross_entropy(
        logits.float(),
        labels.long(),
        reduction='none',
        ignore_index=ignore_index)


def _pixel_terms(logits: Tensor, labels: Tensor,
                 ignore_index: int) -> Tuple[Tensor, Tensor]:
    """log H (B, C, H, W) and per-pixel CE -log H_label (B, H, W), in fp32."""
    log_h = F.log_softmax(logits.float(), dim=1)
    ce = -_label_score(log_h, _safe_labels(labels, ignore_index))
    return log_h, ce


def noise_aware_loss(cos: Tensor,
                     ycrf: Tensor,
                     yret: Tensor,
                     tau: float = 20.0,
                     gamma: float = 7.0,
                     lam: float = 0.1,
                     detach_sigma: bool = False,
                     ignore_index: int = IGNORE_INDEX,
                     logits: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """NAL, eqs. (10)-(14): L = L_ce + lam * L_wce.

    Args:
        cos: (B, C, H, W) cosine map cos(phi, W_c) upsampled to the label
            size (:func:`cosine_map` then :func:`upsample_to`).
        ycrf, yret: (B, H, W) pseudo labels.
        tau: cosine classifier scale; H = softmax(tau * cos).
        gamma: damping parameter of eq. (12).
        lam: balance parameter of eq. (14).
        detach_sigma: stop gradients through sigma (the authors do not).
        logits: optional (B, C, H, W) logits giving H instead of tau * cos,
            e.g. the dot-product classifier ("DP" ablation); sigma still
            comes from ``cos``.

    Returns:
        dict with ``loss_ce`` (eq. 10), ``loss_wce`` (eq. 13), ``loss``
        (eq. 14) and ``sigma`` (B, H, W) (eq. 12, detached, 0 outside ~S,
        for logging / visualisation).
    """
    _check_sizes(cos, ycrf, 'cosine map')
    if logits is None:
        logits = tau * cos
    return region_loss(
        logits,
        ycrf,
        yret,
        mode='nal',
        cos=cos,
        gamma=gamma,
        lam=lam,
        detach_sigma=detach_sigma,
        ignore_index=ignore_index)


def poly_beta(cur_iter: int, max_iter: int, power: float = 0.9) -> float:
    """Bootstrapping balance beta: poly schedule from 1 (iter 0) to 0.

    beta = (1 - cur_iter / max_iter)^power, with ``cur_iter`` clamped to
    [0, max_iter] (supplement §5).
    """
    if max_iter <= 0:
        raise ValueError(f'max_iter must be positive, got {max_iter}')
    progress = min(max(float(cur_iter) / max_iter, 0.0), 1.0)
    return (1.0 - progress)**power


def region_loss(logits: Tensor,
                ycrf: Tensor,
                yret: Tensor,
                mode: str = 'nal',
                *,
                lam: float = 0.1,
                cos: Optional[Tensor] = None,
                tau: float = 20.0,
                gamma: float = 7.0,
                detach_sigma: bool = False,
                beta: Optional[float] = None,
                detach_target: bool = True,
                ignore_index: int = IGNORE_INDEX) -> Dict[str, Tensor]:
    """Stage-3 losses on Ycrf + Yret, one entry point (paper Table 3).

    All modes except ``ce_*`` are L = L_ce on S (eq. 10) + lam * a term on ~S:

    * ``'nal'``: L_wce, eq. (13), sigma from ``cos`` (eq. 12). ``cos``
      defaults to ``logits / tau`` (right for the cosine classifier; pass
      ``cos`` explicitly with dot-product logits).
    * ``'ignore'``: no term, ~S is discarded (Table 3 baseline).
    * ``'entropy'``: L_ER = mean over ~S of -sum_c H_c log H_c, supplement
      eq. (4).
    * ``'bootstrap'``: L_BS = mean over ~S of -sum_c Y_c log H_c with
      Y = beta * onehot(Ycrf) + (1 - beta) * H, supplement eqs. (6)-(7);
      ``beta`` is required (see :func:`poly_beta`). H in the target is
      detached by default (the E-step of the supplement's EM reading).
    * ``'ce_crf'`` / ``'ce_ret'``: plain CE on Ycrf / Yret alone, mean over
      its non-ignored pixels (Yret is unused / Ycrf is unused).

    Args:
        logits: (B, C, H, W) logits at label resolution.
        ycrf, yret: (B, H, W) labels.
        mode: one of :data:`REGION_LOSS_MODES`.
        lam: weight of the ~S term (0.1 in the paper for every mode).

    Returns:
        dict with ``loss`` (the total) and its parts: ``loss_ce`` (always)
        and ``loss_wce`` + ``sigma`` (nal), ``loss_er`` (entropy) or
        ``loss_bs`` (bootstrap). Only ``loss`` should be optimised; the
        others are for logging.
    """
    if mode not in REGION_LOSS_MODES:
        raise ValueError(f'unknown mode {mode!r}; expected one of '
                         f'{REGION_LOSS_MODES}')
    _check_sizes(logits, ycrf, 'logits')
    if mode in ('ce_crf', 'ce_ret'):
        target = ycrf if mode == 'ce_crf' else yret
        ce = _pixel_ce(logits, target, ignore_index)
        loss = _weighted_mean(ce, target != ignore_index)
        return dict(loss_ce=loss, loss=loss)

    reliable, unreliable = split_regions(ycrf, yret, ignore_index)
    if mode in ('entropy', 'bootstrap'):  # these need all of log H
        log_h, ce = _pixel_terms(logits, ycrf, ignore_index)
    else:
        ce = _pixel_ce(logits, ycrf, ignore_index)
    out = dict(loss_ce=_weighted_mean(ce, reliable))
    extra = None
    if mode == 'nal':
        if cos is None:  # cosine classifier: cos = logits / tau, per pixel
            scores = logits.float()
            top = scores.max(dim=1).values / tau
            own = _label_score(scores, _safe_labels(ycrf, ignore_index)) / tau
            sigma = sigma_from_scores(top, own, ycrf, gamma, ignore_index)
        else:
            sigma = confidence_from_cos(cos.float(), ycrf, gamma, ignore_index)
        if detach_sigma:
            sigma = sigma.detach()
        extra = out['loss_wce'] = _weighted_mean(ce, unreliable, sigma)
        out['sigma'] = torch.where(unreliable, sigma,
                                   torch.zeros_like(sigma)).detach()
    elif mode == 'entropy':
        entropy = -(log_h.exp() * log_h).sum(dim=1)
        extra = out['loss_er'] = _weighted_mean(entropy, unreliable)
    elif mode == 'bootstrap':
        if beta is None:
            raise ValueError("mode 'bootstrap' needs beta (see poly_beta)")
        prob = log_h.exp()
        if detach_target:
            prob = prob.detach()
        onehot = F.one_hot(_safe_labels(ycrf, ignore_index),
                           logits.shape[1]).permute(0, 3, 1, 2).to(prob)
        target = beta * onehot + (1.0 - beta) * prob
        bs = -(target * log_h).sum(dim=1)
        extra = out['loss_bs'] = _weighted_mean(bs, unreliable)
    out['loss'] = out['loss_ce'] if extra is None \
        else out['loss_ce'] + lam * extra
    return out
