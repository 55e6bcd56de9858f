"""Start the stage-1 classifier at the class prototypes (docs/stage1.md).

Not in the paper (its classifier starts from a Gaussian). With ImageNet
features the mean BAP vector of each class's boxes already separates the
classes; starting the rows there instead of near zero lets a short CPU
schedule spend its iterations on refining rather than on finding them.
"""
from __future__ import annotations

from typing import Optional

import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.utils import ProgressBar

from ..core.bap import prototype_classifier_rows


@HOOKS.register_module()
class PrototypeInitHook(Hook):
    """Before the first iteration, set each row ``w_c`` of the BAP head's
    classifier to the mean pooled vector of class ``c`` over the training
    set (row 0: the mean background query), scaled by
    :func:`~bana_mm.core.bap.prototype_classifier_rows`.

    The vectors are the head's own training vectors (eq. 3-4 with the
    training grid), through the training pipeline, one pass. A resumed run
    (iteration > 0) is left alone; a class without boxes keeps its initial
    row. Each rank reads its share of the images; the sums are all-reduced.

    Args:
        logit_scale: logit of a vector of average length at cosine 1.
        batch_size: images per forward pass.
        max_images: read at most this many images (None: all).
    """

    priority = 'LOW'

    def __init__(self,
                 logit_scale: float = 10.0,
                 batch_size: int = 4,
                 max_images: Optional[int] = None) -> None:
        self.logit_scale = float(logit_scale)
        self.batch_size = int(batch_size)
        self.max_images = max_images

    def before_train(self, runner) -> None:
        if runner.iter > 0:
            return
        model = getattr(runner.model, 'module', runner.model)
        head = model.head
        dataset = runner.train_dataloader.dataset
        total = len(dataset) if self.max_images is None else min(
            len(dataset), int(self.max_images))
        indices = list(range(get_rank(), total, get_world_size()))
        weight = head.classifier.weight
        sums = weight.new_zeros(weight.shape[:2], dtype=torch.float64)
        counts = weight.new_zeros(weight.shape[0], dtype=torch.float64)
        norm_sum = weight.new_zeros((), dtype=torch.float64)
        bar = ProgressBar(len(indices)) if get_rank() == 0 else None
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for start in range(0, len(indices), self.batch_size):
                batch = pseudo_collate([
                    dataset[i] for i in indices[start:start + self.batch_size]
                ])
                data = model.data_preprocessor(batch, False)
                feats = model.extract_feat(data['inputs'])
                samples = data['data_samples']
                vectors, rows = head.training_vectors(
                    head.pool(feats, samples, head.grid_size), samples)
                vectors = vectors.double()
                sums.index_add_(0, rows.to(sums.device), vectors)
                counts += torch.bincount(
                    rows, minlength=counts.numel()).to(counts)
                norm_sum += vectors.norm(dim=1).sum()
                if bar is not None:
                    bar.update(len(samples))
        model.train(was_training)
        for value in (sums, counts, norm_sum):
            all_reduce(value)
        if counts.sum() == 0:
            raise RuntimeError('PrototypeInitHook: the training set gave no '
                               'pooled vector (no boxes in any image?)')
        mean_norm = float(norm_sum / counts.sum())
        rows = prototype_classifier_rows(sums, counts, mean_norm,
                                         self.logit_scale)
        set_rows = head.set_class_rows(rows)
        if bar is not None:
            bar.file.write('\n')
        print_log(
            f'PrototypeInitHook: {set_rows} of {rows.shape[0]} classifier '
            f'rows set to class prototypes ({int(counts.sum())} vectors from '
            f'{total} images, mean norm {mean_norm:.3g})',
            logger='current')
