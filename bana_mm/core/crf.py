"""DenseCRF (pydensecrf) and Ycrf (paper §3.2 eq. 7, SPEC §2-3), registry-free.

The one set of DenseCRF parameters of the project lives here: the stage-2
kernels of the authors' code (:data:`CRF_STAGE2`) and the test-time
post-processing of DeepLab-V1 / V2 (:data:`CRF_DEEPLAB_V1`,
:data:`CRF_DEEPLAB_V2`). Each is ``{gaussian: {sxy, compat}, bilateral:
{sxy, srgb, compat}, iterations}``, read-only.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .boxes import ArrayLike, pixel_box_masks


def _frozen(gaussian: dict, bilateral: dict, iterations: int = 10):
    return MappingProxyType(
        dict(
            gaussian=MappingProxyType(gaussian),
            bilateral=MappingProxyType(bilateral),
            iterations=iterations))


#: Stage 2 (SPEC §2, authors' stage-2 values): Gaussian sxy 3, compat 3;
#: bilateral sxy 55, srgb 3, compat 4; 10 mean-field iterations.
CRF_STAGE2 = _frozen(dict(sxy=3, compat=3), dict(sxy=55, srgb=3, compat=4))
#: Test-time CRF of DeepLab-V1 LargeFOV (SPEC §3): bilateral sxy 121,
#: srgb 5, compat 4; Gaussian sxy 3, compat 3; 10 mean-field iterations.
CRF_DEEPLAB_V1 = _frozen(
    dict(sxy=3, compat=3), dict(sxy=121, srgb=5, compat=4))
#: Test-time CRF of DeepLab-V2 (SPEC §3): bilateral sxy 67, srgb 3,
#: compat 4; Gaussian sxy 1, compat 3; 10 mean-field iterations.
CRF_DEEPLAB_V2 = _frozen(dict(sxy=1, compat=3), dict(sxy=67, srgb=3, compat=4))
#: Probabilities are clipped to [PROB_CLIP, 1] before -log (SPEC §2).
PROB_CLIP = 1e-5


def crf_probabilities(unaries: Tensor, boxes: ArrayLike) -> Tensor:
    """CRF input: softmax over the (1 + K, H, W) channels inside the union
    of the boxes, the one-hot background vector outside."""
    inside = pixel_box_masks(boxes, tuple(unaries.shape[1:])).any(dim=0)
    probs = torch.softmax(unaries, dim=0)
    onehot = torch.zeros_like(probs)
    onehot[0] = 1.0
    return torch.where(inside[None], probs, onehot)


def dense_crf(image_rgb_uint8: np.ndarray,
              probs: ArrayLike,
              gaussian: Optional[Mapping[str, float]] = None,
              bilateral: Optional[Mapping[str, float]] = None,
              iterations: int = 10,
              prob_clip: float = PROB_CLIP) -> np.ndarray:
    """Fully connected CRF (pydensecrf) on (C, H, W) probabilities.

    Unary = -log(clip(prob, prob_clip, 1)). ``gaussian`` (sxy, compat) and
    ``bilateral`` (sxy, srgb, compat) override the SPEC defaults key by key;
    a kernel with ``compat=0`` is left out. Returns (C, H, W) float32
    marginals after ``iterations`` mean-field steps.
    """
    import pydensecrf.densecrf as dcrf
    probs = np.asarray(
        probs.numpy() if isinstance(probs, Tensor) else probs,
        dtype=np.float32)
    C, H, W = probs.shape
    image = np.ascontiguousarray(image_rgb_uint8, dtype=np.uint8)
    if image.shape != (H, W, 3):
        raise ValueError(f'image {image.shape} does not match probabilities '
                         f'{probs.shape}')
    g = dict(CRF_STAGE2['gaussian'], **(gaussian or {}))
    b = dict(CRF_STAGE2['bilateral'], **(bilateral or {}))
    crf = dcrf.DenseCRF2D(W, H, C)
    unary = -np.log(np.clip(probs, prob_clip, 1.0)).reshape(C, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    if g['compat']:
        crf.addPairwiseGaussian(sxy=g['sxy'], compat=g['compat'])
    if b['compat']:
        crf.addPairwiseBilateral(
            sxy=b['sxy'], srgb=b['srgb'], rgbim=image, compat=b['compat'])
    q = crf.inference(int(iterations))
    return np.asarray(q, dtype=np.float32).reshape(C, H, W)


def labels_from_channels(index: np.ndarray,
                         class_ids: ArrayLike) -> np.ndarray:
    """Channel indices (0 = background, k -> ``class_ids[k-1]``) to uint8
    map ids."""
    lut = np.concatenate([[0], np.asarray(class_ids, dtype=np.int64)])
    return lut[index].astype(np.uint8)


def ycrf_from_marginals(marginals: np.ndarray, class_box_masks: ArrayLike,
                        class_ids: ArrayLike) -> np.ndarray:
    """Ycrf: argmax of the marginals after zeroing each class channel outside
    that class's boxes; (H, W) uint8 map ids (channel k > 0 -> class_ids[k-1]).
    Ties go to the lower channel, background first."""
    m = np.array(marginals, dtype=np.float32, copy=True)
    masks = np.asarray(
        class_box_masks.numpy()
        if isinstance(class_box_masks, Tensor) else class_box_masks,
        dtype=bool)
    m[1:][~masks] = 0.0
    return labels_from_channels(m.argmax(axis=0), class_ids)


def restore_erased_boxes(ycrf: np.ndarray, probs: ArrayLike, boxes: ArrayLike,
                         labels: ArrayLike,
                         class_ids: ArrayLike) -> Tuple[np.ndarray, int]:
    """Give each box that DenseCRF left without a pixel of its class the
    pixels of the box where the CRF input's argmax is that class (not in
    the paper; docs/stage2.md "Boxes DenseCRF erased").

    A box says an object of its class is inside it; with the authors'
    kernels (bilateral compat 4 against softmax unaries in [0, 1]) the CRF
    can remove a small object entirely. Such a box's pixels whose argmax of
    ``probs`` (the (1 + K, H, W) CRF input) is its class channel take its
    class, whatever Ycrf said there; a box whose CRF input never prefers
    its class is left as it is.

    Returns (the new (H, W) uint8 Ycrf, the number of boxes restored).
    """
    probs = torch.as_tensor(np.asarray(probs, dtype=np.float32))
    class_ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if not len(boxes):
        return ycrf, 0
    masks = pixel_box_masks(boxes, tuple(ycrf.shape)).numpy()
    winner = probs.argmax(dim=0).numpy()
    out = np.array(ycrf, dtype=np.uint8, copy=True)
    restored = 0
    for mask, label in zip(masks, labels):
        map_id = int(label) + 1
        if (ycrf[mask] == map_id).any():
            continue
        channel = 1 + int(np.flatnonzero(class_ids == map_id)[0])
        keep = mask & (winner == channel)
        if keep.any():
            out[keep] = map_id
            restored += 1
    return out, restored
