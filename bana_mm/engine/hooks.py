"""Hooks shared by every stage."""
from __future__ import annotations

from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.utils import ProgressBar


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
