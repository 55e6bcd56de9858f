"""Stage 2 inside a stage-1 training run (mmdet scope)."""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..core.pseudo_labels import PseudoLabelConfig
from .pseudo_label_data import build_label_dataset, model_classes
from .pseudo_label_runner import Stage2Options, describe, run_stage2


@HOOKS.register_module()
class PseudoLabelHook(Hook):
    """Stage 2 after stage-1 training: write Ycrf / Yret (and scores,
    pictures) for a dataset with the model just trained (SPEC §2).

    Args:
        out_dir: output folder; relative paths are under the work dir.
        data_root / split: the dataset to label; default the config's
            training set (its ``data_root`` and ``ann_file``).
        workers: DenseCRF processes (0 = inline).
        num_vis: overlay sheets for the first images.
        evaluate / grabcut: write ``metrics.json`` (with the GrabCut
            baseline) when ground truth exists.
        run_after_train: generate when training ends; with False call
            :meth:`generate` on demand.
        label_cfg: fields of ``PseudoLabelConfig`` (``upsample``,
            ``threshold``, ``crf_bilateral``, ``max_pixels``: images
            above it are labelled downscaled, ...).
        overwrite: delete the labels of an earlier run in ``out_dir``
            first. Without it a rerun resumes only when ``fingerprint.json``
            (model, options, dataset) matches, else it stops with an error.

    The result of the last run (``run.json`` plus ``metrics``) is kept in
    ``self.last_run``. Under a distributed launcher every rank labels its
    own shard of the images.
    """

    priority = 'LOW'

    def __init__(self,
                 out_dir: str = 'pseudo_labels',
                 data_root: Optional[str] = None,
                 split: Optional[str] = None,
                 workers: int = 1,
                 num_vis: int = 4,
                 evaluate: bool = True,
                 grabcut: bool = True,
                 run_after_train: bool = True,
                 label_cfg: Optional[dict] = None,
                 overwrite: bool = False) -> None:
        self.out_dir = out_dir
        self.data_root = data_root
        self.split = split
        self.run_after_train = run_after_train
        self.label_cfg = PseudoLabelConfig(**(label_cfg or {}))
        self.workers = workers
        self.num_vis = num_vis
        self.evaluate = evaluate
        self.grabcut = grabcut
        self.overwrite = overwrite
        self.last_run: Optional[dict] = None

    def after_train(self, runner) -> None:
        if self.run_after_train:
            self.generate(runner)

    def generate(self, runner) -> dict:
        """Label the dataset with ``runner.model`` now."""
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        out_dir = osp.join(runner.work_dir, self.out_dir)
        dataset = build_label_dataset(runner.cfg, self.data_root, self.split)
        options = Stage2Options(
            workers=self.workers,
            num_vis=self.num_vis,
            evaluate=self.evaluate,
            grabcut=self.grabcut,
            labels=self.label_cfg)
        was_training = model.training
        run = run_stage2(
            model,
            dataset,
            out_dir,
            options,
            trained_classes=model_classes(runner.cfg),
            overwrite=self.overwrite)
        model.train(was_training)
        runner.logger.info(describe(run, out_dir))
        self.last_run = run
        return run
