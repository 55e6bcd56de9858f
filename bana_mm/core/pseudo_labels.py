"""Stage-2 pseudo labels Ycrf and Yret of one image, paper §3.2 eqs.
(5)-(9), SPEC §2: the options and the two halves of the job.

* :func:`prepare_pseudo_labels` — the network side: unaries u0 and u_c
  (:mod:`~bana_mm.core.unaries`) and the CRF input;
* :func:`finish_pseudo_labels` — the CPU side: DenseCRF and Ycrf
  (:mod:`~bana_mm.core.crf`), Yret (:mod:`~bana_mm.core.retrieval`). Its
  input is picklable, so it runs in worker processes.

Conventions: ``feat`` is the (D, h, w) feature map of the network input of
size ``input_hw``; the image occupies its top-left (H, W)
(:mod:`~bana_mm.core.resample`). ``boxes`` are (N, 4) ``(x1, y1, x2, y2)``
continuous image pixels (``x2`` exclusive), ``labels`` 0-based classes;
output maps use 0 = background and ``label + 1`` for objects (VOC);
``class_weights`` is the (L + 1, D) classifier weight, row 0 background.
Unary channels are ``[background, c_1, ..., c_K]`` for the K distinct
classes in the image, sorted; ``class_ids`` holds their map ids.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .boxes import (ArrayLike, as_boxes, as_labels, class_box_masks,
                    pixel_box_masks, present_class_ids)
from .crf import (CRF_STAGE2, PROB_CLIP, crf_probabilities, dense_crf,
                  labels_from_channels, restore_erased_boxes,
                  ycrf_from_marginals)
from .finite import check_finite
from .resample import UPSAMPLE_MODES, BilinearResampler, cam_maps
from .retrieval import retrieval_maps
from .unaries import (AGNOSTIC_UNARIES, BACKGROUND_MODES, THRESHOLD_REFERENCES,
                      agnostic_class_ids, background_cam_unary, check_choice,
                      image_unaries)

#: Default of :attr:`PseudoLabelConfig.max_pixels`: 2048 x 1024 pixels.
DEFAULT_MAX_PIXELS = 2**21


@dataclass
class PseudoLabelConfig:
    """Every stage-2 option. Defaults reproduce the authors' stage-2 code
    (SPEC §2); the other values are the readings where the paper is silent.

    Attributes:
        threshold: u0 keeps, inside boxes, only values >= threshold * ref.
        threshold_reference: ref of the threshold: ``'similarity'`` (the
            authors): max of ReLU(cos(f, q)) over the whole image, boxes
            included, before A is set to 1 outside the boxes; ``'boxes'``:
            its max inside the boxes.
        upsample: ``'features'`` (the authors' order, exact and memory
            bounded) or ``'maps'`` (paper footnote 3, cheaper), see
            :mod:`~bana_mm.core.resample`.
        align_corners: of the bilinear upsampling; True (the authors):
            feature cell i sits at input pixel i * (H - 1) / (h - 1), i.e.
            8i for inputs of size 8k + 1.
        background: ``'attention'`` (u0 = A, eq. 7) or ``'cam'`` (the
            ``Ycrf w/o u0`` ablation: ReLU(f . w_0) inside the boxes divided
            by its max there, 1 outside).
        agnostic_classes: 0-based labels without a usable classifier weight;
            their unary is 1 - u0 inside their boxes (VOC-to-COCO). Labels
            whose row ``label + 1`` is missing from ``class_weights`` (or all
            labels if it is None) are class-agnostic too.
        agnostic_unary: what the class-agnostic unary subtracts from 1:
            ``'u0'`` (default) the background unary after the 0.99 x max
            threshold, as it enters the CRF; ``'attention'`` the
            unthresholded attention A (eqs. 2-3, one query). See
            :func:`~bana_mm.core.unaries.agnostic_background`.
        crf_gaussian / crf_bilateral / crf_iterations / prob_clip: DenseCRF.
        restore_erased_boxes: a box that DenseCRF left without a pixel of
            its class gets back the pixels where the CRF input prefers its
            class (:func:`~bana_mm.core.crf.restore_erased_boxes`; not in
            the paper, off by default; the ``lite0`` preset turns it on).
            Yret's prototypes then see the restored object too.
        compute_yret: skip the retrieval labels when False.
        max_pixels: an image with more pixels is labelled scaled down to at
            most this many (network, DenseCRF, retrieval; same aspect
            ratio), and its labels are upsampled (nearest) to its own size
            and cut to its boxes there (:mod:`~bana_mm.core.downscale`); 0
            turns this off. The default, 2**21 = 2048 x 1024 (1920 x 1080
            fits), is 5x the largest VOC (500 x 500) or COCO (640 x 640)
            image, so their labels are unchanged, and keeps stage 2 of a
            6000 x 4000 image under 3 GB on CPU (docs/benchmarks.md;
            plus about 2 GB per DenseCRF worker). Applied where the network
            runs (stage 2 over a dataset,
            :mod:`~bana_mm.det.pseudo_label_runner`);
            :func:`generate_pseudo_labels` gets features already computed.
    """
    threshold: float = 0.99
    threshold_reference: str = 'similarity'
    upsample: str = 'features'
    align_corners: bool = True
    background: str = 'attention'
    agnostic_classes: Tuple[int, ...] = ()
    agnostic_unary: str = 'u0'
    crf_gaussian: Dict[str, float] = field(
        default_factory=lambda: dict(CRF_STAGE2['gaussian']))
    crf_bilateral: Dict[str, float] = field(
        default_factory=lambda: dict(CRF_STAGE2['bilateral']))
    crf_iterations: int = 10
    prob_clip: float = PROB_CLIP
    restore_erased_boxes: bool = False
    compute_yret: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if self.max_pixels is None:
            self.max_pixels = 0
        if (isinstance(self.max_pixels, bool)
                or not isinstance(self.max_pixels,
                                  (int, np.integer)) or self.max_pixels < 0):
            raise ValueError('max_pixels must be an integer >= 0 (0: label '
                             f'every image at its own size), got '
                             f'{self.max_pixels!r}')
        self.max_pixels = int(self.max_pixels)
        check_choice('upsample', self.upsample, UPSAMPLE_MODES)
        check_choice('threshold_reference', self.threshold_reference,
                     THRESHOLD_REFERENCES)
        check_choice('background', self.background, BACKGROUND_MODES)
        check_choice('agnostic_unary', self.agnostic_unary, AGNOSTIC_UNARIES)


@dataclass
class PseudoLabels:
    """Result of :func:`generate_pseudo_labels` (numpy, image resolution).

    ``ycrf`` / ``yret``: (H, W) uint8 label maps (0 background, label + 1).
    ``class_ids``: (K,) map ids of unary channels 1..K. ``u0``: (H, W)
    background attention unary. ``unaries`` / ``probs`` / ``marginals``:
    (1 + K, H, W) CRF unaries (channel 0 = the background unary in use),
    CRF input probabilities and CRF output. ``retrieval_scores``: (1 + K, H,
    W) masked C_c, or None. ``restored_boxes``: boxes given back their
    class after DenseCRF (``restore_erased_boxes``).
    """
    ycrf: np.ndarray
    yret: Optional[np.ndarray]
    class_ids: np.ndarray
    u0: np.ndarray
    unaries: np.ndarray
    probs: np.ndarray
    marginals: np.ndarray
    retrieval_scores: Optional[np.ndarray] = None
    restored_boxes: int = 0
    unary_seconds: float = 0.0
    crf_seconds: float = 0.0
    retrieval_seconds: float = 0.0


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


def prepare_pseudo_labels(
        image_rgb: np.ndarray,
        feat: Tensor,
        class_weights: Optional[Tensor],
        boxes: ArrayLike,
        labels: ArrayLike,
        input_hw: Optional[Tuple[int, int]] = None,
        cfg: Optional[PseudoLabelConfig] = None) -> PreparedImage:
    """Unaries u0 (eq. 7 with the 0.99 threshold), u_c (eqs. 5-6) and the
    CRF input of one image; arguments as :func:`generate_pseudo_labels`.

    Raises:
        :class:`~bana_mm.core.finite.NonFiniteError` when the features,
        unaries or CRF input hold NaN or inf.
    """
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
        boxes, labels = as_boxes(boxes), as_labels(labels)
        input_hw = tuple(int(v) for v in (input_hw or (H, W)))
        resampler = BilinearResampler(feat.shape[1:], input_hw, (H, W),
                                      cfg.align_corners)
        class_ids = present_class_ids(labels)
        agnostic = agnostic_class_ids(class_ids, class_weights,
                                      cfg.agnostic_classes)
        norms = (
            resampler.feature_norms(feat)
            if cfg.upsample == 'features' else None)
        u0, uc, inside = image_unaries(feat, class_weights, boxes, labels,
                                       class_ids, agnostic, resampler, cfg,
                                       norms)
        background = u0
        if cfg.background == 'cam':
            if class_weights is None:
                raise ValueError("background='cam' needs class_weights")
            cam0 = cam_maps(feat, class_weights[:1], resampler,
                            cfg.upsample)[0]
            background = background_cam_unary(cam0, inside)
        unaries = torch.cat([background[None], uc], dim=0)
        probs = crf_probabilities(unaries, boxes)
        per_class = class_box_masks(
            pixel_box_masks(boxes, (H, W)), labels, class_ids)
        # a NaN would become background in the argmax: stop instead
        check_finite(
            dict(features=feat, unaries=unaries, crf_input=probs),
            'stage-2 maps of this image')
    return PreparedImage(
        image=image,
        feat=feat,
        class_weights=class_weights,
        boxes=boxes,
        labels=labels,
        input_hw=input_hw,
        class_ids=class_ids,
        u0=u0,
        unaries=unaries,
        probs=probs,
        per_class=per_class,
        norms=norms,
        cfg=cfg,
        unary_seconds=time.perf_counter() - t0)


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
    restored = 0
    if cfg.restore_erased_boxes:
        ycrf, restored = restore_erased_boxes(ycrf, prep.probs, prep.boxes,
                                              prep.labels,
                                              prep.class_ids.numpy())
    t2 = time.perf_counter()
    yret = scores = None
    if cfg.compute_yret:
        resampler = BilinearResampler(prep.feat.shape[1:], prep.input_hw,
                                      ycrf.shape, cfg.align_corners)
        with torch.no_grad():
            channel_ids, scores_t, _ = retrieval_maps(
                prep.feat,
                ycrf,
                prep.class_weights,
                prep.boxes,
                prep.labels,
                upsample=cfg.upsample,
                agnostic_classes=cfg.agnostic_classes,
                resampler=resampler,
                norms=prep.norms)
        yret = labels_from_channels(
            scores_t.argmax(dim=0).numpy(), channel_ids[1:].numpy())
        scores = scores_t.numpy()
    t3 = time.perf_counter()
    return PseudoLabels(
        ycrf=ycrf,
        yret=yret,
        class_ids=prep.class_ids.numpy(),
        u0=prep.u0.numpy(),
        unaries=prep.unaries.numpy(),
        probs=prep.probs.numpy(),
        marginals=marginals,
        retrieval_scores=scores,
        restored_boxes=restored,
        unary_seconds=prep.unary_seconds,
        crf_seconds=t2 - t1,
        retrieval_seconds=t3 - t2)


def generate_pseudo_labels(
        image_rgb: np.ndarray,
        feat: Tensor,
        class_weights: Optional[Tensor],
        boxes: ArrayLike,
        labels: ArrayLike,
        input_hw: Optional[Tuple[int, int]] = None,
        cfg: Optional[PseudoLabelConfig] = None) -> PseudoLabels:
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
    return finish_pseudo_labels(
        prepare_pseudo_labels(image_rgb, feat, class_weights, boxes, labels,
                              input_hw, cfg))
