"""Stage 2 of the BANA job from files: a stage-1 config and checkpoint in,
pseudo labels out (``tools/gen_pseudo_labels.py`` and the pipeline). The
work over a dataset is :mod:`bana_mm.det.pseudo_label_runner`.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional

from ..det.pseudo_label_data import build_label_dataset, model_classes
from ..det.pseudo_label_runner import Stage2Options, describe, run_stage2
from .common import VOCLayout
from .stage1 import stage1_config

__all__ = ['Stage2Options', 'build_label_dataset', 'describe',
           'load_stage1_model', 'model_classes', 'run_stage2',
           'run_stage2_for_layout']


def load_stage1_model(cfg, checkpoint: str, device: Optional[str] = None):
    """The stage-1 classifier of ``cfg`` with ``checkpoint`` loaded, in eval
    mode; returns (model, checkpoint meta)."""
    from mmdet.registry import MODELS
    from mmengine.device import get_device
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu',
                           logger='silent')
    model.to(device or get_device()).eval()
    return model, ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}



def run_stage2_for_layout(layout: VOCLayout, checkpoint: str,
                          out_dir: str, preset: str = 'tiny',
                          workers: int = 1, num_vis: int = 4) -> dict:
    """Pseudo labels for the training split with the stage-1 checkpoint;
    return the ``stage2`` summary entry."""
    from mmengine.logging import MMLogger
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

