"""Hooks shared by every stage."""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.utils import ProgressBar

from ..core.finite import NonFiniteError, check_finite, non_finite


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """A progress bar over the training iterations, on rank 0 only.

    mmengine's ``LoggerHook`` prints a line every ``interval`` iterations;
    this bar shows the whole run at a glance (iterations, rate, ETA). Used by
    ``tools/run_pipeline.py``.
    """

    priority = 'VERY_LOW'

    def __init__(self, bar_width: int = 40) -> None:
        self.bar_width = bar_width
        self._bar: Optional[ProgressBar] = None

    def before_train(self, runner) -> None:
        if is_main_process():
            remaining = runner.max_iters - runner.iter
            self._bar = ProgressBar(remaining, bar_width=self.bar_width)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if self._bar is not None:
            self._bar.update()

    def after_train(self, runner) -> None:
        if self._bar is not None:
            self._bar.file.write('\n')
            self._bar.file.flush()
            self._bar = None


class NonFiniteLossError(NonFiniteError):
    """Training diverged: a loss or the weights to save are not finite."""


def last_saved_checkpoint(work_dir: str) -> str:
    """The checkpoint mmengine's ``CheckpointHook`` saved last in
    ``work_dir`` (its ``last_checkpoint`` record), in words."""
    from mmengine.runner import find_latest_checkpoint
    path = find_latest_checkpoint(work_dir)
    if path and osp.isfile(path):
        return f'the last good checkpoint is {path}'
    return f'no checkpoint was saved in {work_dir} before it'


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first iteration whose loss is NaN or inf,
    naming the iteration, the loss terms and the last good checkpoint; and
    refuse to save a checkpoint whose weights are not finite.

    It runs before ``CheckpointHook`` (priority ``VERY_HIGH``), so the
    diverged weights of that iteration are never saved: every checkpoint
    in the work dir is finite. Added to every training run by
    :func:`add_finite_loss_check`; ``default_hooks.finite_loss=None``
    turns it off.
    """

    priority = 'VERY_HIGH'

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        losses = {k: v for k, v in (outputs or {}).items() if 'loss' in k}
        bad = non_finite(losses)
        if bad:
            raise NonFiniteLossError(
                f'training stopped: the loss is not finite at iteration '
                f'{runner.iter + 1} ({"; ".join(bad)}); the weights are '
                f'not saved; {last_saved_checkpoint(runner.work_dir)} '
                '(lower the learning rate, or check the data of this batch)')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        step = (checkpoint.get('meta') or {}).get('iter', runner.iter)
        try:
            check_finite(
                checkpoint.get('state_dict', {}),
                f'checkpoint of iteration {step}')
        except NonFiniteError as err:
            raise NonFiniteLossError(
                f'{err}; not saved, training stopped; '
                f'{last_saved_checkpoint(runner.work_dir)}') from None


@HOOKS.register_module()
class CPUMemoryReuseHook(Hook):
    """On a CPU, let the training process reuse the memory it frees.

    With glibc's default malloc every training step maps and zero-fills its
    large tensors afresh (~2.4 GB of page faults per step of the paper's
    VGG-16 models, batch 4, crop 321): that made our steps ~4 % slower than
    the authors' loop, whose allocation order happens to let glibc adapt
    (issue 21, docs/benchmarks.md). :func:`~bana_mm.utils.malloc.
    keep_freed_memory` keeps freed blocks in the heap: same values, faster
    steps; the process keeps its peak memory until it ends. A no-op when
    the model is not on the CPU or the C library is not glibc. Added to
    every training run by :func:`add_default_hooks`;
    ``default_hooks.cpu_memory_reuse=None`` turns it off.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.applied = False

    def before_run(self, runner) -> None:
        from ..utils.malloc import keep_freed_memory
        param = next(iter(runner.model.parameters()), None)
        if param is None or param.device.type != 'cpu':
            return
        self.applied = keep_freed_memory()
        if self.applied:
            runner.logger.info(
                'CPU training: freed memory is kept for reuse (glibc '
                'mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB; '
                'default_hooks.cpu_memory_reuse=None turns this off)')


def add_finite_loss_check(cfg) -> None:
    """Add :class:`FiniteLossHook` to ``cfg.default_hooks`` as
    ``finite_loss`` unless the config sets that key (``None``: off)."""
    _add_default_hook(cfg, 'finite_loss', 'FiniteLossHook')


def add_default_hooks(cfg) -> None:
    """The project's hooks of every training run, each unless the config
    sets its key (``None``: off): ``finite_loss``
    (:class:`FiniteLossHook`) and ``cpu_memory_reuse``
    (:class:`CPUMemoryReuseHook`)."""
    add_finite_loss_check(cfg)
    _add_default_hook(cfg, 'cpu_memory_reuse', 'CPUMemoryReuseHook')


def _add_default_hook(cfg, key: str, hook_type: str) -> None:
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = {key: dict(type=hook_type)}
    elif key not in hooks:
        hooks[key] = dict(type=hook_type)
