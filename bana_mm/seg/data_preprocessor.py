"""Data preprocessor that pads Yret like mmseg pads Ycrf (SPEC §6)."""
from __future__ import annotations

from typing import Any, Dict

import torch.nn.functional as F
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS


@MODELS.register_module()
class TwoMapSegDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` that also pads ``gt_ret_seg``.

    ``stack_batch`` pads ``gt_sem_seg`` (Ycrf) and records each sample's
    ``padding_size``; the same padding, with ``seg_pad_val`` (255), is applied
    here to ``gt_ret_seg`` (Yret), so the two maps stay aligned.
    """

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        out = super().forward(data, training)
        if not training:  # mmseg pads no label map at test time either
            return out
        for sample in out.get('data_samples') or []:
            if 'gt_ret_seg' not in sample:
                continue
            pad = sample.metainfo.get('padding_size', [0, 0, 0, 0])
            ret = sample.gt_ret_seg.data
            if any(pad):
                del sample.gt_ret_seg.data
                ret = F.pad(
                    ret, tuple(int(p) for p in pad), value=self.seg_pad_val)
                sample.gt_ret_seg.data = ret
            if 'gt_sem_seg' in sample and \
                    sample.gt_sem_seg.shape != sample.gt_ret_seg.shape:
                raise ValueError(
                    f"{sample.metainfo.get('img_path')}: Yret "
                    f'{tuple(sample.gt_ret_seg.shape)} and Ycrf '
                    f'{tuple(sample.gt_sem_seg.shape)} differ after padding')
        return out
