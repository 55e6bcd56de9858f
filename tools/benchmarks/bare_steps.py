"""Bare PyTorch training steps of stages 1 and 3 for ``step_overhead.py``.

What the authors' plain-PyTorch code does, on the project's own modules: the
DataLoader workers hand over ready tensors (mean-subtracted images padded
with 0 = the mean colour, label maps padded with 255, boxes as tensors), and
the main process runs backbone, head maths, loss, ``backward``, ``step``,
``zero_grad``; no data preprocessor, no data samples, no Runner. The maths
are the project's registry-free functions (:mod:`bana_mm.core.bap`,
:mod:`bana_mm.core.nal`), so the loss equals the project's on the same batch
(``step_overhead.py`` checks it before timing).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import record_function

from bana_mm.core.bap import background_aware_pool
from bana_mm.core.boxes import box_masks_at
from bana_mm.core.nal import region_loss


class BareCollate:
    """Collate of the bare loop, run in the loader workers: packed samples
    (``inputs`` uint8 CHW, ``data_samples``) to plain tensors."""

    def __init__(self,
                 stage: int,
                 mean: Sequence[float],
                 size: Sequence[int] = None,
                 seg_pad: int = 255) -> None:
        self.stage = stage
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.size = tuple(size) if size is not None else None
        self.seg_pad = seg_pad

    def _pad(self, tensors: List[Tensor], value: float) -> Tensor:
        h = max(t.shape[-2] for t in tensors)
        w = max(t.shape[-1] for t in tensors)
        if self.size is not None:
            h, w = max(h, self.size[0]), max(w, self.size[1])
        return torch.stack([
            F.pad(t, (0, w - t.shape[-1], 0, h - t.shape[-2]), value=value)
            for t in tensors
        ])

    def __call__(self, batch: List[dict]) -> Dict[str, object]:
        images = self._pad([b['inputs'].float() - self.mean for b in batch],
                           0.0)
        samples = [b['data_samples'] for b in batch]
        if self.stage == 3:
            return dict(
                inputs=images,
                ycrf=self._pad([s.gt_sem_seg.data.long() for s in samples],
                               self.seg_pad)[:, 0],
                yret=self._pad([s.gt_ret_seg.data.long() for s in samples],
                               self.seg_pad)[:, 0])
        boxes = [
            getattr(s.gt_instances.bboxes, 'tensor',
                    s.gt_instances.bboxes).float() for s in samples
        ]
        return dict(
            inputs=images,
            boxes=boxes,
            labels=[s.gt_instances.labels.long() for s in samples],
            img_hw=[tuple(s.img_shape[:2]) for s in samples])


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch's tensors (and lists of tensors) on ``device``."""

    def move(v):
        if isinstance(v, Tensor):
            return v.to(device, non_blocking=True)
        if isinstance(v, list) and v and isinstance(v[0], Tensor):
            return [t.to(device, non_blocking=True) for t in v]
        return v

    return {k: move(v) for k, v in batch.items()}


def stage1_loss(model: torch.nn.Module, batch: dict) -> Tensor:
    """BAP cross-entropy of paper §3.1 on a bare batch (``BAPClassifier``)."""
    head = model.head
    feats = model.backbone(batch['inputs'])[-1]
    input_hw = tuple(batch['inputs'].shape[-2:])
    vectors, targets = [], []
    with record_function('BAP pooling'):
        for feat, boxes, labels, (h, w) in zip(feats, batch['boxes'],
                                               batch['labels'],
                                               batch['img_hw']):
            valid = box_masks_at(
                boxes.new_tensor([[0, 0, w, h]]), input_hw, feat.shape[1:])[0]
            pooled = background_aware_pool(
                feat,
                boxes,
                input_hw,
                valid=valid,
                grid_size=head.grid_size,
                roi_size=head.roi_size,
                use_attention=head.mode == 'bap',
                min_background_share=head.min_background_share)
            box_feats, queries = pooled['box_feats'], pooled['queries']
            vectors += [box_feats.flatten(0, 1), queries]
            targets += [(labels + 1).repeat_interleave(box_feats.shape[1]),
                        labels.new_zeros(queries.shape[0])]
    with record_function('loss'):
        logits = torch.cat(vectors) @ head.class_weights.t()
        return F.cross_entropy(logits, torch.cat(targets))


def stage3_loss(model: torch.nn.Module, batch: dict) -> Tensor:
    """NAL (eqs. 10-14) of the DeepLab-V1 cosine classifier on a bare batch
    (``CRFEncoderDecoder`` + ``DeepLabV1Head``)."""
    head, loss = model.decode_head, model.decode_head.loss_decode
    phi = model.backbone(batch['inputs'])[-1]
    with record_function('head.forward'):
        logits = head.classify(phi)
    logits = F.interpolate(
        logits,
        size=batch['ycrf'].shape[-2:],
        mode='bilinear',
        align_corners=head.align_corners)
    with record_function('loss'):
        return region_loss(
            logits,
            batch['ycrf'],
            batch['yret'],
            loss.mode,
            lam=loss.lam,
            tau=head.tau,
            gamma=loss.gamma,
            detach_sigma=loss.detach_sigma,
            ignore_index=loss.ignore_index)['loss']


LOSSES: Dict[int, Callable[[torch.nn.Module, dict], Tensor]] = {
    1: stage1_loss,
    3: stage3_loss
}


def bare_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
              batches, stage: int) -> Callable[[], float]:
    """One training step per call: next batch, loss, backward, SGD step."""
    loss_fn = LOSSES[stage]
    device = next(model.parameters()).device

    def step() -> float:
        batch = to_device(next(batches), device)
        loss = loss_fn(model, batch)
        with record_function('backward'):
            loss.backward()
        with record_function('optimizer step'):
            optimizer.step()
        with record_function('zero_grad'):
            optimizer.zero_grad()
        return loss.detach()

    return step
