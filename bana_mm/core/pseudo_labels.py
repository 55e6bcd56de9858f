"""Stage-2 pseudo labels Ycrf and Yret, paper §3.2 eqs. (5)-(9), SPEC §2.

Registry-free torch / numpy code for one image. Conventions:

* ``feat`` is the (D, h, w) feature map of the network input of size
  ``input_hw`` = (Hin, Win). The image occupies the top-left (H, W) of that
  input at the same scale (test-time padding only, no resize), so maps are
  upsampled to ``input_hw`` and cropped to (H, W).
* ``boxes`` are (N, 4) ``(x1, y1, x2, y2)`` in continuous image pixels
  (``x2`` exclusive); pixel (y, x) is inside when its centre
  ``(x + 0.5, y + 0.5)`` is (:func:`~bana_mm.core.bap.box_masks_at` at
  identity resolution). ``labels`` are 0-based object classes (mmdet).
* Output maps use 0 = background and ``label + 1`` for objects (VOC);
  ``class_weights`` is the (L + 1, D) classifier weight, row 0 background.
* Unary channels are ``[background, c_1, ..., c_K]`` for the K distinct
  classes in the image, sorted; ``class_ids`` holds their map ids (label+1).

Where the maps are computed (``upsample``, see :class:`PseudoLabelConfig`):

* ``'maps'`` (default, paper footnote 3): the per-pixel feature maps
  (``ReLU(cos(f, q))`` for u0, ``ReLU(f . w_c)`` for u_c, the retrieval
  correlations C_c) are computed at feature resolution and bilinearly
  upsampled; everything that depends on the boxes (the 0.99 threshold, the
  per-box maximum, zeroing outside boxes) is done at image resolution, where
  the boxes are defined. A box smaller than a feature cell therefore still
  gets a unary.
* ``'features'`` (the authors' order): as if the features were upsampled to
  the image first. Computed exactly without holding the (D, H, W) tensor:
  dot products commute with bilinear interpolation, masked means use its
  adjoint (:meth:`BilinearResampler.region_means`), and only the per-pixel
  feature norms need upsampled features (done in channel chunks).
* ``'unaries'``: the most literal reading of footnote 3: u0 and u_c are
  finished at feature resolution (boxes nearest-sampled as in BAP, query from
  :func:`~bana_mm.core.bap.grid_queries` with N = 1) and upsampled; eqs. (3)
  and (5) are then re-imposed at image resolution (u0 = 1 outside the boxes,
  u_c = 0 outside B_c). A box covering no sampled cell gets u_c = 0.

Yret in every mode: the prototype q_c (eq. 8) is the exact mean of the
bilinearly upsampled features over the image pixels where Ycrf = c, computed
as ``f @ adjoint(mask)`` (no (D, H, W) tensor; same cost as downsampling
Ycrf, but without the rounding error of a nearest/area-downsampled label
map); C_c (eq. 9) is computed at feature resolution and upsampled (``'maps'``,
``'unaries'``, footnote 3) or from the upsampled features (``'features'``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .bap import (background_attention, box_masks_at, definite_background,
                  grid_queries)

ArrayLike = Union[Tensor, np.ndarray, Sequence]

#: DenseCRF kernels of SPEC §2 (authors' stage-2 values), read-only.
DEFAULT_CRF_GAUSSIAN = MappingProxyType(dict(sxy=3, compat=3))
DEFAULT_CRF_BILATERAL = MappingProxyType(dict(sxy=55, srgb=3, compat=4))
UPSAMPLE_MODES = ('maps', 'features', 'unaries')
THRESHOLD_REFERENCES = ('image', 'similarity', 'boxes')
BACKGROUND_MODES = ('attention', 'cam')
_EPS = 1e-12  # F.normalize's norm floor


@dataclass
class PseudoLabelConfig:
    """Every stage-2 option, defaulting to SPEC §2.

    Attributes:
        threshold: u0 keeps, inside boxes, only values >= threshold * ref.
        threshold_reference: ref of the threshold. ``'image'`` (SPEC): max of
            A over the image, A = 1 outside boxes (eq. 3), so with any
            background ref = 1 and the threshold is an absolute 0.99;
            ``'similarity'``: max of ReLU(cos(f, q)) over the whole image
            before A is set to 1 outside boxes; ``'boxes'``: its max inside
            the boxes.
        upsample: ``'maps'``, ``'features'`` or ``'unaries'`` (module doc).
        align_corners: of the bilinear upsampling.
        background: ``'attention'`` (u0 = A, eq. 7) or ``'cam'`` (the
            ``Ycrf w/o u0`` ablation: ReLU(f . w_0), zeroed inside boxes,
            divided by its max).
        agnostic_classes: 0-based labels without a usable classifier weight;
            their unary is 1 - u0 inside their boxes (VOC-to-COCO). Labels
            whose row ``label + 1`` is missing from ``class_weights`` (or all
            labels if it is None) are class-agnostic too.
        crf_gaussian / crf_bilateral / crf_iterations / prob_clip: DenseCRF.
        compute_yret: skip the retrieval labels when False.
        feature_chunk: channels upsampled at once for the feature norms of
            ``upsample='features'`` (memory bound).
    """
    threshold: float = 0.99
    threshold_reference: str = 'image'
    upsample: str = 'maps'
    align_corners: bool = False
    background: str = 'attention'
    agnostic_classes: Tuple[int, ...] = ()
    crf_gaussian: Dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_CRF_GAUSSIAN))
    crf_bilateral: Dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_CRF_BILATERAL))
    crf_iterations: int = 10
    prob_clip: float = 1e-5
    compute_yret: bool = True
    feature_chunk: int = 64

    def __post_init__(self):
        _check_choice('upsample', self.upsample, UPSAMPLE_MODES)
        _check_choice('threshold_reference', self.threshold_reference,
                      THRESHOLD_REFERENCES)
        _check_choice('background', self.background, BACKGROUND_MODES)


@dataclass
class PseudoLabels:
    """Result of :func:`generate_pseudo_labels` (numpy, image resolution).

    ``ycrf`` / ``yret``: (H, W) uint8 label maps (0 background, label + 1).
    ``class_ids``: (K,) map ids of unary channels 1..K. ``u0``: (H, W)
    background attention unary. ``unaries`` / ``probs`` / ``marginals``:
    (1 + K, H, W) CRF unaries (channel 0 = the background unary in use),
    CRF input probabilities and CRF output. ``retrieval_scores``: (1 + K, H,
    W) masked C_c, or None.
    """
    ycrf: np.ndarray
    yret: Optional[np.ndarray]
    class_ids: np.ndarray
    u0: np.ndarray
    unaries: np.ndarray
    probs: np.ndarray
    marginals: np.ndarray
    retrieval_scores: Optional[np.ndarray] = None
    unary_seconds: float = 0.0
    crf_seconds: float = 0.0
    retrieval_seconds: float = 0.0


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


def _as_boxes(boxes: ArrayLike) -> Tensor:
    if not isinstance(boxes, Tensor):
        boxes = np.asarray(boxes, dtype=np.float32)
    return torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def _as_labels(labels: ArrayLike) -> Tensor:
    if not isinstance(labels, Tensor):
        labels = np.asarray(labels, dtype=np.int64)
    return torch.as_tensor(labels, dtype=torch.long).reshape(-1)


def present_class_ids(labels: ArrayLike) -> Tensor:
    """Sorted map ids (label + 1) of the distinct classes in ``labels``."""
    return torch.unique(_as_labels(labels)) + 1


def pixel_box_masks(boxes: ArrayLike, image_hw: Tuple[int, int]) -> Tensor:
    """(N, H, W) bool masks of boxes at image resolution (pixel centres)."""
    return box_masks_at(_as_boxes(boxes), image_hw, image_hw)


def class_box_masks(box_masks: Tensor, labels: ArrayLike,
                    class_ids: Tensor) -> Tensor:
    """(K, h, w) union of the box masks of each class in ``class_ids``."""
    labels = _as_labels(labels)
    out = box_masks.new_zeros((len(class_ids),) + tuple(box_masks.shape[1:]))
    for k, cid in enumerate(class_ids.tolist()):
        sel = labels == cid - 1
        if sel.any():
            out[k] = box_masks[sel].any(dim=0)
    return out


# ------------------------------------------------------------ resampling
class BilinearResampler:
    """Bilinear map from a feature grid covering the (padded) network input
    to the image, its adjoint, and exact statistics of upsampled features.

    ``up(x)`` = bilinear upsampling of (K, h, w) maps to ``input_hw``,
    cropped to ``image_hw``. It is linear, ``up(x) = Ry x Rx^T`` with
    interpolation matrices Ry (H, h), Rx (W, w); :meth:`adjoint` applies
    ``Ry^T m Rx``, so ``sum_p m(p) up(f)(p) = f @ adjoint(m)``.
    """

    def __init__(self, feat_hw: Tuple[int, int], input_hw: Tuple[int, int],
                 image_hw: Tuple[int, int], align_corners: bool = False):
        self.feat_hw = tuple(int(v) for v in feat_hw)
        self.input_hw = tuple(int(v) for v in input_hw)
        self.image_hw = tuple(int(v) for v in image_hw)
        self.align_corners = align_corners
        if (self.image_hw[0] > self.input_hw[0]
                or self.image_hw[1] > self.input_hw[1]):
            raise ValueError(f'image {self.image_hw} larger than the network '
                             f'input {self.input_hw}')
        self._mats: Optional[Tuple[Tensor, Tensor]] = None

    @property
    def identity(self) -> bool:
        return self.feat_hw == self.input_hw

    def up(self, maps: Tensor) -> Tensor:
        """(K, h, w) -> (K, H, W): bilinear to the input, crop to image."""
        H, W = self.image_hw
        if maps.shape[0] == 0:
            return maps.new_zeros((0, H, W))
        if not self.identity:
            maps = F.interpolate(maps[None], size=self.input_hw,
                                 mode='bilinear',
                                 align_corners=self.align_corners)[0]
        return maps[:, :H, :W]

    def _matrices(self, dtype: torch.dtype, device) -> Tuple[Tensor, Tensor]:
        if self._mats is None:
            (h, w), (Hin, Win), (H, W) = (self.feat_hw, self.input_hw,
                                          self.image_hw)
            ry = F.interpolate(torch.eye(h)[None, None], size=(Hin, h),
                               mode='bilinear',
                               align_corners=self.align_corners)[0, 0]
            rx = F.interpolate(torch.eye(w)[None, None], size=(Win, w),
                               mode='bilinear',
                               align_corners=self.align_corners)[0, 0]
            self._mats = (ry[:H], rx[:W])
        return tuple(m.to(dtype=dtype, device=device) for m in self._mats)

    def adjoint(self, maps: Tensor) -> Tensor:
        """(K, H, W) image maps -> (K, h, w) weights ``Ry^T m Rx``."""
        if self.identity:
            h, w = self.feat_hw
            return F.pad(maps, (0, w - maps.shape[2], 0, h - maps.shape[1]))
        ry, rx = self._matrices(maps.dtype, maps.device)
        return ry.t() @ maps @ rx

    def region_means(self, feat: Tensor, masks: Tensor
                     ) -> Tuple[Tensor, Tensor]:
        """Mean of the upsampled features over each (K, H, W) bool mask.

        Returns (K, D) means (0 for an empty mask) and (K,) pixel counts.
        """
        weights = self.adjoint(masks.to(feat.dtype))  # (K, h, w)
        sums = weights.flatten(1) @ feat.flatten(1).t()  # (K, D)
        counts = masks.flatten(1).sum(dim=1)
        return sums / counts.clamp(min=1)[:, None].to(feat.dtype), counts

    def feature_norms(self, feat: Tensor, chunk: int = 64) -> Tensor:
        """(H, W) L2 norm of the upsampled features, ``chunk`` channels at a
        time (never holds the (D, H, W) tensor)."""
        total = feat.new_zeros(self.image_hw)
        for start in range(0, feat.shape[0], chunk):
            total += self.up(feat[start:start + chunk]).square().sum(dim=0)
        return total.sqrt()


def similarity_maps(feat: Tensor, queries: Tensor,
                    resampler: BilinearResampler, upsample: str = 'maps',
                    norms: Optional[Tensor] = None) -> Tensor:
    """ReLU(cos(f(p), q_k)) at image resolution, (K, H, W) (eqs. 2, 9).

    ``'features'`` evaluates it on the upsampled features (``norms`` from
    :meth:`BilinearResampler.feature_norms`); otherwise at feature
    resolution, then upsampled. A zero query gives a zero map.
    """
    q = F.normalize(queries, dim=1, eps=_EPS)
    if upsample == 'features':
        if norms is None:
            norms = resampler.feature_norms(feat)
        dots = resampler.up(torch.einsum('kd,dhw->khw', q, feat))
        return (dots / norms.clamp(min=_EPS)).relu()
    f = F.normalize(feat, dim=0, eps=_EPS)
    return resampler.up(torch.einsum('kd,dhw->khw', q, f).relu())


def cam_maps(feat: Tensor, weights: Tensor, resampler: BilinearResampler,
             upsample: str = 'maps') -> Tensor:
    """CAM_c = ReLU(f . w_c) (eq. 6) at image resolution, (K, H, W)."""
    dots = torch.einsum('kd,dhw->khw', weights.to(feat.dtype), feat)
    if upsample == 'features':  # dot products commute with interpolation
        return resampler.up(dots).relu()
    return resampler.up(dots.relu())


# ---------------------------------------------------------------- unaries
def threshold_attention(similarity: Optional[Tensor], inside: Tensor,
                        threshold: float = 0.99, reference: str = 'image',
                        valid: Optional[Tensor] = None) -> Tensor:
    """u0 = A (eq. 7) keeping only confident background inside the boxes.

    A = ``similarity`` inside the boxes and 1 outside (eq. 3); inside the
    boxes every value below ``threshold * ref`` is set to 0 (the others are
    kept as they are). ``ref`` per ``reference`` (see
    :class:`PseudoLabelConfig`), over ``valid`` (real image) positions.
    ``similarity=None`` (no background to query) gives u0 = 0 inside the
    boxes and 1 outside.
    """
    _check_choice('reference', reference, THRESHOLD_REFERENCES)
    if similarity is None:
        similarity = torch.zeros(inside.shape)
    a = torch.where(inside, similarity, torch.ones_like(similarity))
    region = (torch.ones_like(inside) if valid is None else valid)
    if reference == 'image':
        pool = a[region]
    elif reference == 'similarity':
        pool = similarity[region]
    else:
        pool = similarity[region & inside]
    ref = pool.max() if pool.numel() else a.new_zeros(())
    drop = inside & (a < threshold * ref)
    return torch.where(drop, torch.zeros_like(a), a)


def background_unary(feat: Tensor, boxes: ArrayLike,
                     input_hw: Tuple[int, int], threshold: float = 0.99,
                     reference: str = 'image',
                     image_hw: Optional[Tuple[int, int]] = None) -> Tensor:
    """u0 at the resolution of ``feat`` (eqs. 1-3, 7 with N = 1).

    Boxes are nearest-sampled (:func:`box_masks_at`); the single query is the
    mean feature of all background cells (:func:`grid_queries`, N = 1),
    excluding padding cells beyond ``image_hw``. If the boxes cover every
    cell there is no query: u0 = 0 inside the boxes (the classes take over)
    and 1 elsewhere, never NaN. Padding cells are 1.
    """
    h, w = feat.shape[1:]
    boxes = _as_boxes(boxes).to(feat.dtype)
    masks = box_masks_at(boxes, input_hw, (h, w))
    inside = masks.any(dim=0)  # all False for no boxes
    valid = None
    if image_hw is not None and tuple(image_hw) != tuple(input_hw):
        H, W = image_hw
        valid = box_masks_at(boxes.new_tensor([[0, 0, W, H]]), input_hw,
                             (h, w))[0]
        inside = inside & valid
    background = definite_background(masks, valid)
    queries, ok = grid_queries(feat, background, 1)
    similarity = None
    if ok.any():
        similarity = background_attention(feat, queries[ok],
                                          torch.ones_like(inside))
    return threshold_attention(similarity, inside, threshold, reference,
                               valid)


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
    if len(box_masks) == 0:
        return out
    per_box = cams[box_channels] * box_masks.to(cams.dtype)  # (N, h, w)
    peaks = per_box.flatten(1).amax(dim=1)  # CAMs are >= 0
    scaled = per_box / torch.where(peaks > 0, peaks,
                                   torch.ones_like(peaks))[:, None, None]
    for k in torch.unique(box_channels).tolist():
        out[k] = scaled[box_channels == k].amax(dim=0)
    return out


def _agnostic_set(class_ids: Tensor, class_weights: Optional[Tensor],
                  agnostic_classes: Iterable[int]) -> set:
    """Map ids that have no usable classifier weight."""
    rows = 0 if class_weights is None else class_weights.shape[0]
    explicit = {int(c) + 1 for c in agnostic_classes}
    return {cid for cid in class_ids.tolist()
            if cid in explicit or cid >= rows}


def _class_channels(class_ids: Tensor, labels: Tensor) -> Tensor:
    lut = {cid: k for k, cid in enumerate(class_ids.tolist())}
    return torch.tensor([lut[int(l) + 1] for l in labels.tolist()],
                        dtype=torch.long)


def _assemble_class_unaries(cams: Tensor, box_masks: Tensor, labels: Tensor,
                            class_ids: Tensor, agnostic: set,
                            u0: Optional[Tensor]) -> Tensor:
    """Per-box normalised CAMs; 1 - u0 inside the boxes of agnostic classes."""
    out = normalise_per_box(cams, box_masks, _class_channels(class_ids,
                                                             labels))
    if agnostic:
        if u0 is None:
            raise ValueError('class-agnostic classes need u0')
        per_class = class_box_masks(box_masks, labels, class_ids)
        for k, cid in enumerate(class_ids.tolist()):
            if cid in agnostic:
                out[k] = torch.where(per_class[k], 1.0 - u0,
                                     torch.zeros_like(u0))
    return out


def _weight_rows(class_weights: Optional[Tensor], class_ids: Tensor,
                 agnostic: set, dim: int) -> Tensor:
    """Rows w_c of the present classes (zeros for agnostic ones)."""
    rows = torch.zeros((len(class_ids), dim))
    for k, cid in enumerate(class_ids.tolist()):
        if cid not in agnostic:
            rows[k] = class_weights[cid]
    return rows


def class_unaries(feat: Tensor, class_weights: Optional[Tensor],
                  boxes: ArrayLike, labels: ArrayLike,
                  input_hw: Tuple[int, int], u0: Optional[Tensor] = None,
                  agnostic_classes: Iterable[int] = ()
                  ) -> Tuple[Tensor, Tensor]:
    """u_c (eqs. 5-6) at the resolution of ``feat`` for the present classes.

    CAM_c = ReLU(f . w_c) (raw dot product), divided per box by that box's
    max over its (nearest-sampled) cells, 0 outside the boxes of class c,
    max over overlapping boxes of one class. Class-agnostic classes (see
    :class:`PseudoLabelConfig`) get 1 - ``u0`` inside their boxes.

    Returns:
        class_ids (K,) map ids (label + 1, sorted) and unaries (K, h, w).
    """
    h, w = feat.shape[1:]
    boxes, labels = _as_boxes(boxes).to(feat.dtype), _as_labels(labels)
    class_ids = present_class_ids(labels)
    agnostic = _agnostic_set(class_ids, class_weights, agnostic_classes)
    masks = box_masks_at(boxes, input_hw, (h, w))
    weights = _weight_rows(class_weights, class_ids, agnostic,
                           feat.shape[0]).to(feat.dtype)
    cams = torch.einsum('kd,dhw->khw', weights, feat).relu()
    return class_ids, _assemble_class_unaries(cams, masks, labels, class_ids,
                                              agnostic, u0)


def background_cam_unary(cam0: Tensor, inside: Tensor,
                         valid: Optional[Tensor] = None) -> Tensor:
    """Background channel of the ``Ycrf w/o u0`` ablation: the background
    CAM ReLU(f . w_0), zeroed inside the boxes, divided by its max over the
    image (all zeros if that max is 0)."""
    u = torch.where(inside, torch.zeros_like(cam0), cam0)
    region = u if valid is None else u[valid]
    peak = region.max() if region.numel() else u.new_zeros(())
    return u / peak if peak > 0 else torch.zeros_like(u)


# -------------------------------------------------------------------- CRF
def crf_probabilities(unaries: Tensor, boxes: ArrayLike) -> Tensor:
    """CRF input: softmax over the (1 + K, H, W) channels inside the union
    of the boxes, the one-hot background vector outside."""
    inside = pixel_box_masks(boxes, tuple(unaries.shape[1:])).any(dim=0)
    probs = torch.softmax(unaries, dim=0)
    onehot = torch.zeros_like(probs)
    onehot[0] = 1.0
    return torch.where(inside[None], probs, onehot)


def dense_crf(image_rgb_uint8: np.ndarray, probs: ArrayLike,
              gaussian: Mapping[str, float] = DEFAULT_CRF_GAUSSIAN,
              bilateral: Mapping[str, float] = DEFAULT_CRF_BILATERAL,
              iterations: int = 10, prob_clip: float = 1e-5) -> np.ndarray:
    """Fully connected CRF (pydensecrf) on (C, H, W) probabilities.

    Unary = -log(clip(prob, prob_clip, 1)). ``gaussian`` (sxy, compat) and
    ``bilateral`` (sxy, srgb, compat) override the SPEC defaults key by key;
    a kernel with ``compat=0`` is left out. Returns (C, H, W) float32
    marginals after ``iterations`` mean-field steps.
    """
    import pydensecrf.densecrf as dcrf
    probs = np.asarray(probs.numpy() if isinstance(probs, Tensor) else probs,
                       dtype=np.float32)
    C, H, W = probs.shape
    image = np.ascontiguousarray(image_rgb_uint8, dtype=np.uint8)
    if image.shape != (H, W, 3):
        raise ValueError(f'image {image.shape} does not match probabilities '
                         f'{probs.shape}')
    g = dict(DEFAULT_CRF_GAUSSIAN, **gaussian)
    b = dict(DEFAULT_CRF_BILATERAL, **bilateral)
    crf = dcrf.DenseCRF2D(W, H, C)
    unary = -np.log(np.clip(probs, prob_clip, 1.0)).reshape(C, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    if g['compat']:
        crf.addPairwiseGaussian(sxy=g['sxy'], compat=g['compat'])
    if b['compat']:
        crf.addPairwiseBilateral(sxy=b['sxy'], srgb=b['srgb'], rgbim=image,
                                 compat=b['compat'])
    q = crf.inference(int(iterations))
    return np.asarray(q, dtype=np.float32).reshape(C, H, W)


def _labels_from_channels(index: np.ndarray, class_ids: ArrayLike
                          ) -> np.ndarray:
    lut = np.concatenate([[0], np.asarray(class_ids, dtype=np.int64)])
    return lut[index].astype(np.uint8)


def ycrf_from_marginals(marginals: np.ndarray, class_box_masks: ArrayLike,
                        class_ids: ArrayLike) -> np.ndarray:
    """Ycrf: argmax of the marginals after zeroing each class channel outside
    that class's boxes; (H, W) uint8 map ids (channel k > 0 -> class_ids[k-1]).
    Ties go to the lower channel, background first."""
    m = np.array(marginals, dtype=np.float32, copy=True)
    masks = np.asarray(class_box_masks.numpy()
                       if isinstance(class_box_masks, Tensor)
                       else class_box_masks, dtype=bool)
    m[1:][~masks] = 0.0
    return _labels_from_channels(m.argmax(axis=0), class_ids)


# -------------------------------------------------------------- retrieval
def class_prototypes(feat: Tensor, label_map: ArrayLike, channel_ids: Tensor,
                     class_weights: Optional[Tensor],
                     resampler: BilinearResampler,
                     agnostic: Iterable[int] = ()) -> Tuple[Tensor, Tensor]:
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


def retrieval_maps(feat: Tensor, ycrf: ArrayLike,
                   class_weights: Optional[Tensor], boxes: ArrayLike,
                   labels: ArrayLike,
                   input_hw: Optional[Tuple[int, int]] = None,
                   upsample: str = 'maps', align_corners: bool = False,
                   agnostic_classes: Iterable[int] = (),
                   resampler: Optional[BilinearResampler] = None,
                   norms: Optional[Tensor] = None
                   ) -> Tuple[Tensor, Tensor, Tensor]:
    """Masked correlation maps of eq. (9) at image resolution.

    C_c = ReLU(cos(f, q_c)); channel 0 (background) is set to 1 outside the
    union of the boxes, class channels to 0 outside their boxes.

    Returns channel ids (1 + K,) (0 then label + 1), scores (1 + K, H, W)
    and prototypes (1 + K, D).
    """
    _check_choice('upsample', upsample, UPSAMPLE_MODES)
    ycrf = np.asarray(ycrf)
    image_hw = tuple(ycrf.shape)
    if resampler is None:
        resampler = BilinearResampler(feat.shape[1:], input_hw or image_hw,
                                      image_hw, align_corners)
    labels = _as_labels(labels)
    class_ids = present_class_ids(labels)
    agnostic = _agnostic_set(class_ids, class_weights, agnostic_classes)
    channel_ids = torch.cat([torch.zeros(1, dtype=torch.long), class_ids])
    protos, has = class_prototypes(feat, ycrf, channel_ids, class_weights,
                                   resampler, agnostic)
    mode = 'features' if upsample == 'features' else 'maps'
    if mode == 'features' and norms is None:
        norms = resampler.feature_norms(feat)
    scores = similarity_maps(feat, protos, resampler, mode, norms)
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
    return _labels_from_channels(index, channel_ids[1:].numpy())


# -------------------------------------------------------- instance masks
def instance_masks(label_map: ArrayLike, boxes: ArrayLike,
                   labels: ArrayLike) -> np.ndarray:
    """(N, H, W) bool: mask_i = (Y == c_i + 1) inside box i."""
    y = np.asarray(label_map)
    masks = pixel_box_masks(boxes, y.shape).numpy()
    ids = _as_labels(labels).numpy() + 1
    return masks & (y[None] == ids[:, None, None])


def masks_to_coco_rle(masks: np.ndarray) -> list:
    """COCO RLE dicts (``counts`` as str, json-ready) of (N, H, W) masks."""
    from pycocotools import mask as mask_utils
    masks = np.asarray(masks, dtype=np.uint8)
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    for rle in rles:
        rle['counts'] = rle['counts'].decode('ascii')
    return rles


# --------------------------------------------------------------- pipeline
def _unaries_at_image(feat, class_weights, boxes, labels, class_ids,
                      agnostic, resampler, cfg, norms):
    """u0 and class unaries for ``upsample`` in ('maps', 'features')."""
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
    unaries = _assemble_class_unaries(cams, box_masks, labels, class_ids,
                                      agnostic, u0)
    return u0, unaries, inside


def _unaries_upsampled(feat, class_weights, boxes, labels, class_ids,
                       resampler, cfg):
    """``upsample='unaries'``: finish u0 / u_c at feature resolution,
    upsample, re-impose eqs. (3) and (5) at image resolution."""
    u0_f = background_unary(feat, boxes, resampler.input_hw, cfg.threshold,
                            cfg.threshold_reference, resampler.image_hw)
    _, uc_f = class_unaries(feat, class_weights, boxes, labels,
                            resampler.input_hw, u0_f, cfg.agnostic_classes)
    box_masks = pixel_box_masks(boxes, resampler.image_hw)
    inside = box_masks.any(dim=0)
    u0 = torch.where(inside, resampler.up(u0_f[None])[0],
                     torch.ones(resampler.image_hw))
    per_class = class_box_masks(box_masks, labels, class_ids)
    unaries = resampler.up(uc_f) * per_class.to(u0.dtype)
    return u0, unaries, inside


@dataclass
class PreparedImage:
    """Everything :func:`finish_pseudo_labels` needs after the network ran:
    the unaries and CRF input of one image (the GPU / main-process half of
    :func:`generate_pseudo_labels`). Picklable, so the CPU half can run in a
    worker process."""
    image: np.ndarray
    feat: Tensor
    class_weights: Optional[Tensor]
    boxes: Tensor
    labels: Tensor
    input_hw: Tuple[int, int]
    class_ids: Tensor
    u0: Tensor
    unaries: Tensor
    probs: Tensor
    per_class: Tensor
    norms: Optional[Tensor]
    cfg: PseudoLabelConfig
    unary_seconds: float = 0.0


def prepare_pseudo_labels(image_rgb: np.ndarray, feat: Tensor,
                          class_weights: Optional[Tensor], boxes: ArrayLike,
                          labels: ArrayLike,
                          input_hw: Optional[Tuple[int, int]] = None,
                          cfg: Optional[PseudoLabelConfig] = None
                          ) -> PreparedImage:
    """Unaries u0 (eq. 7 with the 0.99 threshold), u_c (eqs. 5-6) and the
    CRF input of one image; arguments as :func:`generate_pseudo_labels`."""
    cfg = cfg or PseudoLabelConfig()
    t0 = time.perf_counter()
    image = np.ascontiguousarray(image_rgb, dtype=np.uint8)
    H, W = image.shape[:2]
    with torch.no_grad():
        feat = torch.as_tensor(feat, dtype=torch.float32).detach().cpu()
        if feat.dim() == 4:
            feat = feat[0]
        if class_weights is not None:
            class_weights = torch.as_tensor(
                class_weights, dtype=torch.float32).detach().cpu()
            class_weights = class_weights.reshape(class_weights.shape[0], -1)
        boxes, labels = _as_boxes(boxes), _as_labels(labels)
        input_hw = tuple(int(v) for v in (input_hw or (H, W)))
        resampler = BilinearResampler(feat.shape[1:], input_hw, (H, W),
                                      cfg.align_corners)
        class_ids = present_class_ids(labels)
        agnostic = _agnostic_set(class_ids, class_weights,
                                 cfg.agnostic_classes)
        norms = (resampler.feature_norms(feat, cfg.feature_chunk)
                 if cfg.upsample == 'features' else None)
        if cfg.upsample == 'unaries':
            u0, uc, inside = _unaries_upsampled(
                feat, class_weights, boxes, labels, class_ids, resampler, cfg)
        else:
            u0, uc, inside = _unaries_at_image(
                feat, class_weights, boxes, labels, class_ids, agnostic,
                resampler, cfg, norms)
        background = u0
        if cfg.background == 'cam':
            if class_weights is None:
                raise ValueError("background='cam' needs class_weights")
            mode = 'features' if cfg.upsample == 'features' else 'maps'
            cam0 = cam_maps(feat, class_weights[:1], resampler, mode)[0]
            background = background_cam_unary(cam0, inside)
        unaries = torch.cat([background[None], uc], dim=0)
        probs = crf_probabilities(unaries, boxes)
        per_class = class_box_masks(pixel_box_masks(boxes, (H, W)), labels,
                                    class_ids)
    return PreparedImage(
        image=image, feat=feat, class_weights=class_weights, boxes=boxes,
        labels=labels, input_hw=input_hw, class_ids=class_ids, u0=u0,
        unaries=unaries, probs=probs, per_class=per_class, norms=norms,
        cfg=cfg, unary_seconds=time.perf_counter() - t0)


def finish_pseudo_labels(prep: PreparedImage) -> PseudoLabels:
    """DenseCRF, Ycrf and Yret (eqs. 8-9) of a prepared image (the CPU
    half of :func:`generate_pseudo_labels`)."""
    cfg = prep.cfg
    t1 = time.perf_counter()
    if len(prep.class_ids):
        marginals = dense_crf(prep.image, prep.probs, cfg.crf_gaussian,
                              cfg.crf_bilateral, cfg.crf_iterations,
                              cfg.prob_clip)
    else:  # nothing to segment: all background
        marginals = prep.probs.numpy().astype(np.float32)
    ycrf = ycrf_from_marginals(marginals, prep.per_class,
                               prep.class_ids.numpy())
    t2 = time.perf_counter()
    yret = scores = None
    if cfg.compute_yret:
        resampler = BilinearResampler(prep.feat.shape[1:], prep.input_hw,
                                      ycrf.shape, cfg.align_corners)
        with torch.no_grad():
            channel_ids, scores_t, _ = retrieval_maps(
                prep.feat, ycrf, prep.class_weights, prep.boxes, prep.labels,
                upsample=cfg.upsample, agnostic_classes=cfg.agnostic_classes,
                resampler=resampler, norms=prep.norms)
        yret = _labels_from_channels(scores_t.argmax(dim=0).numpy(),
                                     channel_ids[1:].numpy())
        scores = scores_t.numpy()
    t3 = time.perf_counter()
    return PseudoLabels(
        ycrf=ycrf, yret=yret, class_ids=prep.class_ids.numpy(),
        u0=prep.u0.numpy(), unaries=prep.unaries.numpy(),
        probs=prep.probs.numpy(), marginals=marginals,
        retrieval_scores=scores, unary_seconds=prep.unary_seconds,
        crf_seconds=t2 - t1, retrieval_seconds=t3 - t2)


def generate_pseudo_labels(image_rgb: np.ndarray, feat: Tensor,
                           class_weights: Optional[Tensor], boxes: ArrayLike,
                           labels: ArrayLike,
                           input_hw: Optional[Tuple[int, int]] = None,
                           cfg: Optional[PseudoLabelConfig] = None
                           ) -> PseudoLabels:
    """Ycrf and Yret for one image (paper §3.2, SPEC §2).

    Args:
        image_rgb: (H, W, 3) uint8 RGB image (the DenseCRF colours).
        feat: (D, h, w) (or (1, D, h, w)) features of the network input.
        class_weights: (L + 1, D) classifier weight (row 0 background), or
            None (every class agnostic, needs ``background='attention'``).
        boxes: (N, 4) image-pixel boxes; labels: (N,) 0-based classes.
        input_hw: (Hin, Win) of the (padded) network input; default (H, W).
        cfg: options, SPEC defaults.
    """
    return finish_pseudo_labels(prepare_pseudo_labels(
        image_rgb, feat, class_weights, boxes, labels, input_hw, cfg))
