"""Data preprocessor for the 5-channel input of AnnNet (MDH §3.2).

mmseg's ``SegDataPreProcessor`` converts BGR to RGB only for 3-channel
inputs; here the first three channels are swapped for any channel count, and
``mean``/``std`` must have one entry per input channel (checked).
"""
from __future__ import annotations

from typing import Any, Dict

from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS


@MODELS.register_module()
class MultiChannelSegDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` for image + extra channels (priors).

    Channels 0-2 are the image (BGR -> RGB if ``bgr_to_rgb``), the rest pass
    unchanged; all are normalised with the per-channel ``mean``/``std``.
    Batch padding (to ``size``) uses ``pad_val`` after normalisation for
    every channel, so pad in the pipeline (mmcv ``Pad`` before
    ``AddBoxPriors``) to give padded pixels real priors.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.swap_rgb = self.channel_conversion
        self.channel_conversion = False  # done here for any channel count

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        data = self.cast_data(data)
        inputs = data['inputs']
        for index, image in enumerate(inputs):
            if self._enable_normalize and image.size(0) != self.mean.numel():
                path = ''
                samples = data.get('data_samples') or []
                if index < len(samples):
                    path = samples[index].metainfo.get('img_path', '')
                raise ValueError(
                    f'{path}: input has {image.size(0)} channels but mean/'
                    f'std have {self.mean.numel()} (5 with priors, 3 without)')
        if self.swap_rgb:
            inputs = [x[[2, 1, 0, *range(3, x.size(0))], ...] for x in inputs]
        data['inputs'] = inputs
        return super().forward(data, training)
