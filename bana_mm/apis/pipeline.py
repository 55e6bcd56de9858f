"""The whole BANA job as one command: stages 1 (BAP classifier), 2 (pseudo
labels) and 3 (DeepLab with the noise-aware loss).

``tools/run_pipeline.py`` is the CLI; this module holds the logic so that
tests and notebooks can call :func:`run_pipeline` directly. Each stage runs
the same config a user would run with ``tools/train.py``, with the data root,
the classes and the work dir filled in, and adds its figures to
``WORK/summary.json``.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import time
import uuid
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.io import atomic_write_text

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), 'configs', 'bana')

#: Stage-1 config of each preset.
STAGE1_CONFIGS = {
    'tiny': 'bap_vgg16_tiny.py',
    'full': 'bap_vgg16_voc.py',
}


@dataclass
class VOCLayout:
    """A PASCAL-VOC-layout folder with box annotations."""
    root: str
    classes: tuple
    train_split: str
    val_split: Optional[str]

    @classmethod
    def inspect(cls, root: str) -> 'VOCLayout':
        """Check ``root`` and find its classes and split lists.

        Raises:
            FileNotFoundError: naming what is missing.
        """
        from ..det.datasets import VOC_CLASSES, read_class_names
        for sub in ('JPEGImages', 'Annotations'):
            if not osp.isdir(osp.join(root, sub)):
                raise FileNotFoundError(
                    f'{root} is not a VOC-layout folder: {sub}/ is missing')
        splits = {}
        for split in ('train', 'val'):
            for folder in ('Segmentation', 'Main'):
                rel = osp.join('ImageSets', folder, f'{split}.txt')
                if osp.isfile(osp.join(root, rel)):
                    splits[split] = rel
                    break
        if 'train' not in splits:
            raise FileNotFoundError(
                f'{root}: no ImageSets/Segmentation/train.txt or '
                'ImageSets/Main/train.txt')
        names_file = osp.join(root, 'class_names.txt')
        classes = (read_class_names(names_file) if osp.isfile(names_file)
                   else VOC_CLASSES)
        return cls(root=root, classes=classes, train_split=splits['train'],
                   val_split=splits.get('val'))


def window_means(losses: Sequence[float], share: float = 0.1) -> tuple:
    """Mean of the first and of the last ``share`` of a loss curve."""
    losses = np.asarray(losses, dtype=float)
    if losses.size == 0:
        raise ValueError('no training loss was recorded')
    n = max(1, int(round(losses.size * share)))
    return float(losses[:n].mean()), float(losses[-n:].mean())


def unique_experiment_name(stage: str) -> str:
    """A run name of its own, so that the message hub (and the loss curve
    read back after training) is not shared with another run in the same
    process."""
    return f'{stage}_{time.strftime("%Y%m%d_%H%M%S")}_{uuid.uuid4().hex[:6]}'


def train_and_summarise(cfg, stage: str) -> Tuple[object, dict]:
    """Train ``cfg`` with mmengine's Runner; return the runner and
    ``{"iters", "loss_first", "loss_last", "checkpoint"}``."""
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    loss_first, loss_last = window_means(losses)
    checkpoint = osp.join(cfg.work_dir, f'iter_{runner.iter}.pth')
    if not osp.isfile(checkpoint):
        raise RuntimeError(f'{stage} finished but {checkpoint} is missing')
    return runner, dict(iters=int(runner.iter), loss_first=loss_first,
                        loss_last=loss_last,
                        checkpoint=osp.abspath(checkpoint))


def stage1_config(layout: VOCLayout, work_dir: str, preset: str = 'tiny',
                  max_iters: Optional[int] = None,
                  cfg_options: Optional[dict] = None):
    """The stage-1 config of ``preset`` pointed at ``layout``."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIG_DIR, STAGE1_CONFIGS[preset]))
    root = layout.root.rstrip('/') + '/'
    data = dict(data_root=root, metainfo=dict(classes=layout.classes))
    cfg.train_dataloader.dataset.update(data, ann_file=layout.train_split)
    val_split = layout.val_split or layout.train_split
    for key in ('val_dataloader', 'test_dataloader'):
        cfg[key].dataset.update(data, ann_file=val_split)
    cfg.model.head.num_classes = len(layout.classes)
    cfg.work_dir = work_dir
    cfg.experiment_name = unique_experiment_name('stage1')
    if max_iters is not None:
        cfg.train_cfg.max_iters = max_iters
        cfg.train_cfg.val_interval = max_iters
        for scheduler in cfg.param_scheduler:
            if 'milestones' in scheduler:
                scheduler.milestones = [
                    min(m, max(1, int(max_iters * 0.75)))
                    for m in scheduler.milestones]
    cfg.default_hooks.logger.interval = max(
        1, cfg.train_cfg.max_iters // 10)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='ProgressBarHook')]
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def run_stage1(layout: VOCLayout, work_dir: str, preset: str = 'tiny',
               max_iters: Optional[int] = None,
               cfg_options: Optional[dict] = None) -> dict:
    """Train the BAP classifier; return the ``stage1`` summary entry."""
    import bana_mm.det  # noqa: F401
    cfg = stage1_config(layout, work_dir, preset, max_iters,
                        cfg_options=cfg_options)
    start = time.time()
    _, entry = train_and_summarise(cfg, 'stage 1')
    entry['seconds'] = round(time.time() - start, 1)
    return entry


def update_summary(path: str, entries: Dict[str, dict]) -> dict:
    """Merge ``entries`` into the json summary at ``path`` (atomically)."""
    summary = {}
    if osp.isfile(path):
        with open(path) as f:
            summary = json.load(f)
    summary.update(entries)
    atomic_write_text(path, json.dumps(summary, indent=2) + '\n')
    return summary


def ensure_default_dataset(root: str, seed: int = 0) -> str:
    """Generate the embedded synthetic dataset at ``root`` unless present."""
    if not osp.isfile(osp.join(root, 'ImageSets', 'Segmentation',
                               'val.txt')):
        from ..datagen import generate_synthetic_dataset
        generate_synthetic_dataset(root, seed=seed)
    return root


def run_stage2_for_layout(layout: VOCLayout, checkpoint: str,
                          out_dir: str, preset: str = 'tiny',
                          workers: int = 1, num_vis: int = 4) -> dict:
    """Pseudo labels for the training split with the stage-1 checkpoint
    (:mod:`bana_mm.apis.stage2`); return the ``stage2`` summary entry."""
    from mmengine.logging import MMLogger

    from .stage2 import (Stage2Options, build_label_dataset, describe,
                         load_stage1_model, model_classes, run_stage2)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'stage-1 checkpoint not found: {checkpoint}')
    cfg = stage1_config(layout, osp.dirname(out_dir), preset)
    model, meta = load_stage1_model(cfg, checkpoint)
    dataset = build_label_dataset(cfg)
    run = run_stage2(model, dataset, out_dir,
                     Stage2Options(workers=workers, num_vis=num_vis),
                     trained_classes=model_classes(cfg, meta))
    MMLogger.get_current_instance().info(describe(run, out_dir))
    metrics = run.get('metrics') or {}
    return dict(
        images=run['images'], written=run['written'],
        failed=len(run['failed']),
        seconds_per_image=run['seconds_per_image'],
        miou=metrics.get('miou', {}), s_share=metrics.get('s_share'),
        s_accuracy=metrics.get('s_accuracy'), out_dir=osp.abspath(out_dir),
        pictures=osp.abspath(osp.join(out_dir, 'vis')))


def _previous(summary_path: str, stage: str, key: str) -> str:
    """A value the summary of an earlier run recorded (``--stages 2``
    after ``--stages 1``)."""
    if osp.isfile(summary_path):
        with open(summary_path) as f:
            entry = json.load(f).get(stage) or {}
        if entry.get(key):
            return entry[key]
    raise FileNotFoundError(
        f'{summary_path} has no {stage}.{key}: run that stage first '
        f'(e.g. --stages {stage[-1]},...)')


def run_pipeline(work_dir: str, data_root: Optional[str] = None,
                 preset: str = 'tiny', stages: Sequence[int] = (1, ),
                 max_iters: Optional[int] = None,
                 cfg_options: Optional[dict] = None,
                 workers: int = 1) -> dict:
    """Run the requested stages and return the updated summary.

    Args:
        work_dir: output folder (``stage1/``, ``stage2/``, ``stage3/``,
            ``summary.json``).
        data_root: VOC-layout folder; None generates the embedded synthetic
            dataset under ``work_dir/synthetic_data``.
        preset: ``'tiny'`` (CPU, minutes) or ``'full'`` (paper recipe).
        stages: which stages to run, in order; a later stage alone reuses
            the outputs recorded in ``summary.json``.
        max_iters: override the iteration count of stages 1 and 3.
        cfg_options: overrides of the stage-1 config.
        workers: DenseCRF processes of stage 2.
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
        checkpoint = _previous(summary_path, 'stage1', 'checkpoint')
        stage2 = run_stage2_for_layout(layout, checkpoint,
                                       osp.join(work_dir, 'stage2'), preset,
                                       workers)
        summary = update_summary(summary_path, dict(stage2=stage2))
    if 3 in stages:
        from .stage3 import run_stage3
        labels = _previous(summary_path, 'stage2', 'out_dir')
        if layout.val_split is None:
            raise FileNotFoundError(
                f'{layout.root}: stage 3 evaluates on a val split with '
                'ground truth; no ImageSets/*/val.txt found')
        stage3 = run_stage3(layout.root, layout.classes, labels,
                            osp.join(work_dir, 'stage3'), preset, max_iters,
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
