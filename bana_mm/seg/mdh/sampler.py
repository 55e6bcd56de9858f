"""Batch sampler delivering the F:W mix of mixed-dual-head training (§3.3).

Every batch holds ``n_F`` fully labelled and ``batch_size - n_F`` weakly
labelled samples, ``n_F : n_W = batch_ratio`` (rounded, at least one of
each). F and W are drawn from two independently shuffled, endlessly
recycled streams, so the small F is repeated while W is walked through. Which
samples each head then learns from is the head's business
(:class:`~bana_mm.seg.mdh.heads.MixedDualHeadMixin`, ``mix_ratio``), the
samples carry their ``is_full`` tag from
:class:`~bana_mm.seg.mdh.dataset.MDHVOCDataset`.
"""
from __future__ import annotations

from typing import Iterator, List, Sequence, Tuple

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmseg.registry import DATA_SAMPLERS
from torch.utils.data import BatchSampler, Sampler


def check_ratio(ratio: Sequence[float], name: str) -> Tuple[float, float]:
    """``(a, b)`` with both parts > 0, else ``ValueError`` naming it."""
    try:
        a, b = (float(v) for v in ratio)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be two numbers (F, W), got '
                         f'{ratio!r}') from None
    if not (a > 0 and b > 0):
        raise ValueError(f'{name} = {a:g}:{b:g} has a zero or negative part;'
                         ' both F and W parts must be > 0')
    return a, b


def split_batch(batch_size: int, ratio: Tuple[float, float]) -> int:
    """Number of F samples in a batch of ``batch_size`` at F:W = ratio."""
    if batch_size < 2:
        raise ValueError(f'a mixed F:W batch needs batch_size >= 2, got '
                         f'{batch_size}')
    n_full = round(batch_size * ratio[0] / (ratio[0] + ratio[1]))
    return min(max(n_full, 1), batch_size - 1)


class _Stream:
    """Endless reshuffled walk over a list of indices."""

    def __init__(self, indices: List[int], generator: torch.Generator):
        self.indices = indices
        self.generator = generator
        self.order: List[int] = []

    def take(self, count: int) -> List[int]:
        out = []
        while len(out) < count:
            if not self.order:
                perm = torch.randperm(
                    len(self.indices), generator=self.generator).tolist()
                self.order = [self.indices[i] for i in perm]
            out.append(self.order.pop())
        return out


@DATA_SAMPLERS.register_module()
class MixedBatchSampler(BatchSampler):
    """Batches of ``n_F`` F samples + ``n_W`` W samples (shuffled within).

    Args:
        sampler: the dataloader's sampler; only its ``dataset`` (which must
            provide ``full_flags()`` or ``is_full`` in ``get_data_info``),
            ``seed`` and ``epoch`` are used.
        batch_size: samples per batch (per rank).
        batch_ratio: F:W composition of a batch, default 1:1.
        seed: shuffling seed; default the sampler's seed (or a synced one).
        infinite: keep yielding batches after an epoch, for iteration-based
            training (as mmengine's ``InfiniteSampler``): mmengine restarts
            an exhausted dataloader with a 2 s pause, which is most of a
            tiny CPU step when an epoch is a few batches.

    One epoch is ``ceil(len(dataset) / (batch_size * world_size))`` batches.
    Each rank draws its own streams (seed offset by rank), so ranks may
    repeat a sample within an epoch; F is tiny and recycled anyway.
    Raises ``ValueError`` naming the split when F or W is empty.
    """

    def __init__(self,
                 sampler: Sampler,
                 batch_size: int,
                 batch_ratio: Sequence[float] = (1, 1),
                 seed: int | None = None,
                 infinite: bool = False) -> None:
        dataset = getattr(sampler, 'dataset', None)
        if dataset is None:
            raise TypeError('MixedBatchSampler needs a sampler with a '
                            '.dataset (e.g. DefaultSampler)')
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.ratio = check_ratio(batch_ratio, 'batch_ratio')
        self.num_full = split_batch(self.batch_size, self.ratio)
        flags = (
            dataset.full_flags() if hasattr(dataset, 'full_flags') else [
                bool(dataset.get_data_info(i).get('is_full'))
                for i in range(len(dataset))
            ])
        self.full = [i for i, f in enumerate(flags) if f]
        self.weak = [i for i, f in enumerate(flags) if not f]
        source = getattr(dataset, 'ann_file', type(dataset).__name__)
        if not self.full:
            raise ValueError(f'the F split (fully labelled, is_full) of '
                             f'{source} is empty; set full_split')
        if not self.weak:
            raise ValueError(f'the W split (weakly labelled) of {source} is '
                             'empty: every id is in the full split')
        self.rank, self.world_size = get_dist_info()
        if seed is None:
            seed = getattr(sampler, 'seed', None)
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.infinite = bool(infinite)
        self._calls = 0
        self.drop_last = False  # every batch is full by construction

    def __len__(self) -> int:
        per_step = self.batch_size * self.world_size
        return max(1, -(-(len(self.full) + len(self.weak)) // per_step))

    def __iter__(self) -> Iterator[List[int]]:
        epoch = getattr(self.sampler, 'epoch', None)
        epoch = self._calls if epoch is None else epoch
        self._calls += 1
        gen = torch.Generator()
        gen.manual_seed(self.seed + 1000003 * epoch + 7919 * self.rank)
        full, weak = _Stream(self.full, gen), _Stream(self.weak, gen)
        while True:
            for _ in range(len(self)):
                batch = full.take(self.num_full) + \
                    weak.take(self.batch_size - self.num_full)
                order = torch.randperm(len(batch), generator=gen).tolist()
                yield [batch[i] for i in order]
            if not self.infinite:
                return
