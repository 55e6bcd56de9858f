"""Scope-neutral data transforms, registered in mmengine's root registry."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmengine.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomRescale(BaseTransform):
    """Resize by a random factor of the image's own size (paper §4.1: 0.5-1.5).

    mmcv's ``RandomResize`` scales a fixed target scale; BANA scales each image
    relative to itself. The resize itself is delegated to the ``Resize`` of the
    current default scope (mmdet's moves boxes and masks, mmcv's the seg maps),
    built once when the pipeline is built.

    Args:
        ratio_range: (low, high) of the uniform scale factor.
        resize_type: transform type that performs the resize.
        **resize_kwargs: extra arguments of that transform.
    """

    def __init__(self,
                 ratio_range: Sequence[float] = (0.5, 1.5),
                 resize_type: str = 'Resize',
                 **resize_kwargs) -> None:
        low, high = ratio_range
        if not 0 < low <= high:
            raise ValueError(f'ratio_range must satisfy 0 < low <= high, got '
                             f'{ratio_range}')
        self.ratio_range = (float(low), float(high))
        self.resize = TRANSFORMS.build(
            dict(
                type=resize_type,
                scale=(1, 1),
                keep_ratio=True,
                **resize_kwargs))

    @cache_randomness
    def _random_ratio(self) -> float:
        return float(np.random.uniform(*self.ratio_range))

    def transform(self, results: dict) -> Optional[dict]:
        ratio = self._random_ratio()
        h, w = results['img'].shape[:2]
        self.resize.scale = (max(1, int(w * ratio + 0.5)),
                             max(1, int(h * ratio + 0.5)))
        return self.resize(results)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(ratio_range={self.ratio_range}, '
                f'resize={self.resize!r})')


def _pil_grey(img_rgb: np.ndarray) -> np.ndarray:
    """PIL's ``convert('L')``: round(0.299 R + 0.587 G + 0.114 B) in 16-bit
    fixed point, as uint8-valued float32 (H, W)."""
    rgb = img_rgb.astype(np.int64)
    grey = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 +
            0x8000) >> 16
    return grey.astype(np.float32)


def _blend(degenerate: np.ndarray, img: np.ndarray,
           factor: float) -> np.ndarray:
    """PIL's ``Image.blend(degenerate, img, factor)`` on uint8 values:
    ``degenerate + factor * (img - degenerate)`` in float32, clipped to
    [0, 255] and truncated to uint8."""
    out = degenerate + np.float32(factor) * (
        img.astype(np.float32) - degenerate)
    return np.clip(out, 0, 255).astype(np.uint8)


def adjust_brightness(img_rgb: np.ndarray, factor: float) -> np.ndarray:
    """Blend with black (torchvision ``adjust_brightness``)."""
    return _blend(np.float32(0), img_rgb, factor)


def adjust_contrast(img_rgb: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the (rounded) mean of the grey image
    (torchvision ``adjust_contrast``)."""
    mean = np.float32(int(_pil_grey(img_rgb).mean(dtype=np.float64) + 0.5))
    return _blend(mean, img_rgb, factor)


def adjust_saturation(img_rgb: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the grey image (torchvision ``adjust_saturation``)."""
    return _blend(_pil_grey(img_rgb)[..., None], img_rgb, factor)


@TRANSFORMS.register_module()
class BANAColorJitter(BaseTransform):
    """The authors' colour jitter (paper §4.1, SPEC §1).

    Always applied, in this order, on the uint8 image: brightness, contrast,
    saturation, each with a factor drawn from U(max(0, 1 - x), 1 + x). The
    maths is torchvision's ``adjust_*`` on a PIL image (what the authors
    call), i.e. PIL's ``ImageEnhance``: blend with black / the rounded mean
    of the grey image / the grey image, grey = round(0.299 R + 0.587 G +
    0.114 B), each result clipped and truncated to uint8. No hue, no channel
    swap (unlike mmdet's ``PhotoMetricDistortion``). OpenMMLab images are
    BGR; ``channel_order`` says which order ``results['img']`` has.

    Args:
        brightness, contrast, saturation: jitter strengths x (0 disables
            the op, as in the authors' code).
        channel_order: 'bgr' (mmcv's ``LoadImageFromFile``) or 'rgb'.
    """

    def __init__(self,
                 brightness: float = 0.5,
                 contrast: float = 0.5,
                 saturation: float = 0.5,
                 channel_order: str = 'bgr') -> None:
        for name, value in (('brightness', brightness), ('contrast', contrast),
                            ('saturation', saturation)):
            if value < 0:
                raise ValueError(f'{name} must be >= 0, got {value}')
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError("channel_order must be 'bgr' or 'rgb', got "
                             f'{channel_order!r}')
        self.strengths = (float(brightness), float(contrast),
                          float(saturation))
        self.channel_order = channel_order

    @cache_randomness
    def _random_factors(self) -> tuple:
        factors = []
        for x in self.strengths:
            low = max(0.0, 1 - x)
            factors.append(float(np.random.uniform(low, 1 + x)) if x else None)
        return tuple(factors)

    def jitter(self, img: np.ndarray,
               factors: Sequence[Optional[float]]) -> np.ndarray:
        """Apply brightness, contrast, saturation ``factors`` (None: skip)."""
        if img.dtype != np.uint8:
            # the authors jitter the uint8 image; cast like their astype
            img = np.clip(img, 0, 255).astype(np.uint8)
        rgb = img[..., ::-1] if self.channel_order == 'bgr' else img
        ops = (adjust_brightness, adjust_contrast, adjust_saturation)
        for op, factor in zip(ops, factors):
            if factor is not None:
                rgb = op(rgb, factor)
        out = rgb[..., ::-1] if self.channel_order == 'bgr' else rgb
        return np.ascontiguousarray(out)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError('BANAColorJitter needs an (H, W, 3) image, got '
                             f'shape {img.shape} ({results.get("img_path")})')
        results['img'] = self.jitter(img, self._random_factors())
        return results

    def __repr__(self) -> str:
        b, c, s = self.strengths
        return (f'{self.__class__.__name__}(brightness={b}, contrast={c}, '
                f'saturation={s}, channel_order={self.channel_order!r})')
