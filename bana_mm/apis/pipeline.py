"""The whole BANA job as one command: stages 1 (BAP classifier), 2 (pseudo
labels) and 3 (DeepLab with the noise-aware loss).

``tools/run_pipeline.py`` is the CLI; this module chains the stage runners
(:mod:`.stage1`, :mod:`.stage2`, :mod:`.stage3`) so that tests and notebooks
can call :func:`run_pipeline` directly. Each stage runs the same config a
user would run with ``tools/train.py``, with the data root, the classes and
the work dir filled in, and adds its figures to ``WORK/summary.json``.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import List, Optional, Sequence

from .common import (VOCLayout, ensure_default_dataset, previous_entry,
                     update_summary)
from .stage1 import STAGE1_CONFIGS, run_stage1
from .stage2 import run_stage2_for_layout
from .stage3 import run_stage3


def run_pipeline(work_dir: str,
                 data_root: Optional[str] = None,
                 preset: str = 'tiny',
                 stages: Sequence[int] = (1, ),
                 max_iters: Optional[int] = None,
                 cfg_options: Optional[dict] = None,
                 workers: int = 1,
                 twin: Optional[bool] = None) -> dict:
    """Run the requested stages and return the updated summary.

    Args:
        work_dir: output folder (``stage1/``, ``stage2/``, ``stage3/``,
            ``summary.json``).
        data_root: VOC-layout folder; None generates the embedded synthetic
            dataset under ``work_dir/synthetic_data``.
        preset: ``'tiny'`` (CPU, minutes, synthetic), ``'lite0'`` (CPU,
            ImageNet EfficientNet-Lite0, real images) or ``'full'`` (paper
            recipe).
        stages: which stages to run, in order; a later stage alone reuses
            the outputs recorded in ``summary.json``.
        max_iters: override the iteration count of stages 1 and 3.
        cfg_options: overrides of the stage-1 config.
        workers: DenseCRF processes of stage 2.
        twin: with stage 3, also train its fully supervised twin (the same
            config on the ground-truth masks of the same training images)
            into ``stage3_twin/``; None: only for the ``lite0`` preset.
    """
    unknown = sorted(set(stages) - {1, 2, 3})
    if unknown:
        raise ValueError(f'unknown stage(s) {unknown}; the stages are 1 '
                         '(BAP classifier), 2 (pseudo labels), 3 (DeepLab '
                         'with the noise-aware loss)')
    if preset not in STAGE1_CONFIGS:
        raise ValueError(f'unknown preset {preset!r}; choose from '
                         f'{sorted(STAGE1_CONFIGS)}')
    os.makedirs(work_dir, exist_ok=True)
    if data_root is None:
        data_root = ensure_default_dataset(
            osp.join(work_dir, 'synthetic_data'))
    layout = VOCLayout.inspect(data_root)
    summary_path = osp.join(work_dir, 'summary.json')
    summary: dict = {}
    if 1 in stages:
        stage1 = run_stage1(layout, osp.join(work_dir, 'stage1'), preset,
                            max_iters, cfg_options)
        summary = update_summary(summary_path, dict(stage1=stage1))
    if 2 in stages:
        checkpoint = previous_entry(summary_path, 'stage1', 'checkpoint')
        # a stage 1 trained in this call makes earlier labels stale
        stage2 = run_stage2_for_layout(
            layout,
            checkpoint,
            osp.join(work_dir, 'stage2'),
            preset,
            workers,
            overwrite=1 in stages,
            cfg_options=cfg_options)
        summary = update_summary(summary_path, dict(stage2=stage2))
        if stage2['failed']:
            raise RuntimeError(
                f'stage 2: {stage2["failed"]} of {stage2["images"]} images '
                f'failed (listed in {osp.join(stage2["out_dir"], "run.json")}'
                f'; {summary_path} was written)')
        if stage2.get('left_out'):
            raise RuntimeError(
                f'stage 2: {stage2["left_out"]} of {stage2["images"]} images '
                'left out of the scores, their ground truth cannot be used '
                f'(listed in {osp.join(stage2["out_dir"], "metrics.json")}; '
                f'{summary_path} was written)')
    if 3 in stages:
        labels = previous_entry(summary_path, 'stage2', 'out_dir')
        if layout.val_split is None:
            raise FileNotFoundError(
                f'{layout.root}: stage 3 evaluates on a val split with '
                'ground truth; no ImageSets/*/val.txt found')
        stage3 = run_stage3(
            layout.root,
            layout.classes,
            labels,
            osp.join(work_dir, 'stage3'),
            preset,
            max_iters,
            train_split=layout.train_split,
            val_split=layout.val_split)
        if preset == 'lite0' if twin is None else twin:
            stage3['fully_supervised'] = run_stage3(
                layout.root,
                layout.classes,
                None,
                osp.join(work_dir, 'stage3_twin'),
                preset,
                max_iters,
                train_split=layout.train_split,
                val_split=layout.val_split)
        summary = update_summary(summary_path, dict(stage3=stage3))
    return summary


def parse_stages(text: str) -> List[int]:
    """``'1,2'`` -> ``[1, 2]``."""
    try:
        stages = sorted({int(s) for s in text.split(',') if s.strip()})
    except ValueError:
        raise ValueError(f'--stages takes numbers like 1,2,3; got {text!r}')
    if not stages:
        raise ValueError('--stages is empty')
    return stages
