"""A bare PyTorch training step of stages 1 and 3 on the project's modules.

What the authors' plain-PyTorch code does: the DataLoader workers hand over
ready tensors (:class:`BareCollate`: mean-subtracted images padded with 0 =
the mean colour, label maps padded with 255, boxes as tensors), and the
main process runs backbone, the head's maths, loss, ``backward``, ``step``
and ``zero_grad`` (:func:`bare_step`); no data preprocessor, no data
samples, no Runner. The maths are the registry-free functions of
:mod:`bana_mm.core` (BAP, NAL) on the model's own modules and settings
(duck-typed: ``model.backbone`` with ``model.head`` of a ``BAPHead`` or
``model.decode_head`` of a noise-aware head), so on the same batch the loss
equals the project's (:func:`check_same_loss`).

The reference that ``tools/benchmarks/train_step_cost.py`` times the
Runner against.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function

from ..core.bap import background_aware_pool
from ..core.boxes import box_masks_at
from ..core.nal import region_loss


class BareCollate:
    """Collate of the bare loop, run in the loader workers: packed samples
    (``inputs`` uint8 CHW, ``data_samples``) to plain tensors.

    Args:
        stage: 1 (boxes and labels) or 3 (Ycrf and Yret maps).
        mean: per-channel mean subtracted from the images.
        size: pad the batch to at least this (h, w), as the stage-3 data
            preprocessor does.
        seg_pad: value of padded label pixels.
    """

    def __init__(self,
                 stage: int,
                 mean: Sequence[float],
                 size: Optional[Sequence[int]] = None,
                 seg_pad: int = 255) -> None:
        if stage not in (1, 3):
            raise ValueError(f'stage must be 1 or 3, got {stage}')
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


def _stage1_loss(model: nn.Module, batch: dict) -> Tensor:
    """BAP cross-entropy of paper §3.1 (``BAPClassifier``)."""
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


def _stage3_loss(model: nn.Module, batch: dict) -> Tensor:
    """NAL (eqs. 10-14) of the cosine classifier at label resolution
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


#: The loss of a bare batch, per stage.
LOSSES: Dict[int, Callable[[nn.Module, dict], Tensor]] = {
    1: _stage1_loss,
    3: _stage3_loss
}


def bare_step(model: nn.Module, optimizer: torch.optim.Optimizer,
              batches: Iterator[dict], stage: int) -> Callable[[], Tensor]:
    """A function that runs one training step per call: next batch, loss,
    backward, SGD step, zero_grad; it returns the (detached) loss."""
    loss_fn = LOSSES[stage]
    device = next(model.parameters()).device

    def step() -> Tensor:
        loss = loss_fn(model, to_device(next(batches), device))
        with record_function('backward'):
            loss.backward()
        with record_function('optimizer step'):
            optimizer.step()
        with record_function('zero_grad'):
            optimizer.zero_grad()
        return loss.detach()

    return step


def check_same_loss(model: nn.Module,
                    stage: int,
                    samples: List[dict],
                    collate: BareCollate,
                    rtol: float = 1e-4) -> Tuple[float, float]:
    """The loss of the packed ``samples`` through the project's model
    (data preprocessor, ``loss``, ``parse_losses``) and through the bare
    loop, in eval mode (no dropout); raises ``RuntimeError`` unless they
    agree to ``rtol``."""
    from mmengine.dataset import pseudo_collate
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            data = model.data_preprocessor(
                pseudo_collate(copy.deepcopy(samples)), True)
            project = float(
                model.parse_losses(
                    model.loss(data['inputs'], data['data_samples']))[0])
            bare = float(LOSSES[stage](model,
                                       to_device(
                                           collate(samples),
                                           next(model.parameters()).device)))
    finally:
        model.train(was_training)
    if abs(project - bare) > rtol * max(1.0, abs(project)):
        raise RuntimeError(f'stage {stage}: the bare loop computes loss '
                           f'{bare} but the project {project} on the same '
                           'batch')
    return project, bare


__all__ = [
    'BareCollate', 'LOSSES', 'bare_step', 'check_same_loss', 'to_device'
]
