"""Stage 1 of the BANA job: the BAP classifier (paper §3.1), trained with the
same config a user runs with ``tools/train.py``."""
from __future__ import annotations

import time
from typing import Optional

from ..utils.cli import merge_cfg_options
from ..utils.config_path import config_file
from .common import VOCLayout, train_and_summarise, unique_experiment_name

#: Stage-1 config of each preset.
STAGE1_CONFIGS = {
    'tiny': 'bap_vgg16_tiny.py',
    'lite0': 'bap_lite0_voc.py',
    'full': 'bap_vgg16_voc.py',
}


def stage1_config(layout: VOCLayout,
                  work_dir: str,
                  preset: str = 'tiny',
                  max_iters: Optional[int] = None,
                  cfg_options: Optional[dict] = None):
    """The stage-1 config of ``preset`` pointed at ``layout``."""
    from mmengine.config import Config
    cfg = Config.fromfile(config_file('bana/' + STAGE1_CONFIGS[preset]))
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
                    for m in scheduler.milestones
                ]
    cfg.default_hooks.logger.interval = max(1, cfg.train_cfg.max_iters // 10)
    cfg.custom_hooks = list(cfg.get('custom_hooks',
                                    [])) + [dict(type='ProgressBarHook')]
    merge_cfg_options(cfg, cfg_options)
    return cfg


def run_stage1(layout: VOCLayout,
               work_dir: str,
               preset: str = 'tiny',
               max_iters: Optional[int] = None,
               cfg_options: Optional[dict] = None) -> dict:
    """Train the BAP classifier; return the ``stage1`` summary entry."""
    import bana_mm.det  # noqa: F401
    cfg = stage1_config(
        layout, work_dir, preset, max_iters, cfg_options=cfg_options)
    start = time.time()
    _, entry = train_and_summarise(cfg, 'stage 1')
    entry['seconds'] = round(time.time() - start, 1)
    return entry
