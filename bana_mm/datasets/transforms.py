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

    def __init__(self, ratio_range: Sequence[float] = (0.5, 1.5),
                 resize_type: str = 'Resize', **resize_kwargs) -> None:
        low, high = ratio_range
        if not 0 < low <= high:
            raise ValueError(f'ratio_range must satisfy 0 < low <= high, got '
                             f'{ratio_range}')
        self.ratio_range = (float(low), float(high))
        self.resize = TRANSFORMS.build(
            dict(type=resize_type, scale=(1, 1), keep_ratio=True,
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
