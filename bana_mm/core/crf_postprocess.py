"""DenseCRF post-processing of segmentation scores at test time (SPEC §3).

Registry-free. The CRF and its parameter sets (stage 2, DeepLab-V1 / V2) are
:mod:`bana_mm.core.crf`; this module adds the "softmax -> CRF" step.
"""
from __future__ import annotations

from typing import Mapping, Optional, Union

import numpy as np
import torch
from torch import Tensor

from .crf import CRF_DEEPLAB_V1, CRF_DEEPLAB_V2, PROB_CLIP, dense_crf


def crf_refine_probs(image_rgb_uint8: np.ndarray,
                     probs: Union[Tensor, np.ndarray],
                     gaussian: Optional[Mapping[str, float]] = None,
                     bilateral: Optional[Mapping[str, float]] = None,
                     iterations: int = 10,
                     prob_clip: float = PROB_CLIP) -> np.ndarray:
    """CRF marginals (C, H, W) from class probabilities (C, H, W).

    Args:
        image_rgb_uint8: (H, W, 3) RGB uint8 image at the probabilities' size.
        probs: (C, H, W) softmax output of the segmentation model.
        gaussian / bilateral: kernel parameters (defaults: DeepLab-V1 set).
        iterations: mean-field steps.
    """
    if isinstance(probs, Tensor):
        probs = probs.detach().float().cpu().numpy()
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3:
        raise ValueError(
            f'expected (C, H, W) probabilities, got {probs.shape}')
    image = np.asarray(image_rgb_uint8)
    if image.dtype != np.uint8 or image.shape != probs.shape[1:] + (3, ):
        raise ValueError(f'image {image.shape} {image.dtype} must be uint8 '
                         f'(H, W, 3) matching probabilities {probs.shape}')
    gaussian = dict(CRF_DEEPLAB_V1['gaussian'], **(gaussian or {}))
    bilateral = dict(CRF_DEEPLAB_V1['bilateral'], **(bilateral or {}))
    return dense_crf(
        image,
        probs,
        gaussian=gaussian,
        bilateral=bilateral,
        iterations=iterations,
        prob_clip=prob_clip)


def crf_refine_logits(image_rgb_uint8: np.ndarray, logits: Tensor,
                      **crf_kwargs) -> Tensor:
    """Softmax over classes, DenseCRF, return (C, H, W) marginals as a tensor
    on the logits' device and dtype."""
    probs = torch.softmax(logits.detach().float(), dim=0)
    marginals = crf_refine_probs(image_rgb_uint8, probs, **crf_kwargs)
    return torch.from_numpy(marginals).to(
        device=logits.device, dtype=logits.dtype)


__all__ = [
    'CRF_DEEPLAB_V1', 'CRF_DEEPLAB_V2', 'crf_refine_probs', 'crf_refine_logits'
]
