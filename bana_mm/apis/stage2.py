"""Stage 2 of the BANA job from files: a stage-1 config and checkpoint in,
pseudo labels out (``tools/gen_pseudo_labels.py`` and the pipeline). The
work over a dataset is :mod:`bana_mm.det.pseudo_label_runner`.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional

from ..core.pseudo_labels import PseudoLabelConfig
from ..det.pseudo_label_data import build_label_dataset, model_classes
from ..det.pseudo_label_runner import (EXIT_IMAGES_FAILED, Stage2Options,
                                       StaleLabelsError, describe, incomplete,
                                       run_stage2)
from .common import VOCLayout
from .stage1 import stage1_config

#: Per-image stage-2 options of each preset beyond the authors' defaults:
#: ``lite0`` gives back the boxes DenseCRF erased (docs/stage2.md, "Boxes
#: DenseCRF erased"; Ycrf 60.98 -> 62.27 on coco128_voc20, docs/lite0.md).
PRESET_LABEL_OPTIONS = {'lite0': dict(restore_erased_boxes=True)}

__all__ = [
    'EXIT_IMAGES_FAILED', 'PRESET_LABEL_OPTIONS', 'Stage2Options',
    'StaleLabelsError', 'build_label_dataset', 'describe', 'incomplete',
    'load_stage1_model', 'model_classes', 'run_stage2', 'run_stage2_for_layout'
]


def load_stage1_model(cfg,
                      checkpoint: str,
                      device: Optional[str] = None,
                      allow_partial: bool = False):
    """The stage-1 classifier of ``cfg`` with ``checkpoint`` loaded strictly
    (mmengine's ``_load_checkpoint`` and ``load_state_dict``), in eval mode;
    returns (model, checkpoint meta).

    Missing, unexpected or shape-mismatched keys raise ``ValueError`` naming
    the file and the keys; ``allow_partial`` loads what fits instead, with a
    warning listing the rest (the others keep their initial values).
    """
    from mmdet.registry import MODELS
    from mmengine.device import get_device
    from mmengine.registry import DefaultScope
    from mmengine.runner.checkpoint import _load_checkpoint, load_state_dict

    from ..utils.checkpoint import fitting_state

    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    state = fitting_state(model, ckpt, checkpoint, allow_partial,
                          'the stage-1 model of this config')
    load_state_dict(
        model,
        state,
        strict=not allow_partial,
        logger='silent' if allow_partial else 'current')
    meta = ckpt.get('meta') or {}
    classes = (meta.get('dataset_meta') or {}).get('classes')
    rows = model.head.class_weights.shape[0] - 1
    if classes and len(classes) != rows and not allow_partial:
        raise ValueError(
            f'{checkpoint}: its dataset_meta lists {len(classes)} classes '
            f'but its classifier has {rows} class rows (+ background); it is '
            'not a stage-1 BAP checkpoint of this config')
    model.to(device or get_device()).eval()
    return model, meta


def run_stage2_for_layout(layout: VOCLayout,
                          checkpoint: str,
                          out_dir: str,
                          preset: str = 'tiny',
                          workers: int = 1,
                          num_vis: int = 4,
                          overwrite: bool = False,
                          cfg_options: Optional[dict] = None) -> dict:
    """Pseudo labels for the training split with the stage-1 checkpoint and
    the preset's per-image options (``PRESET_LABEL_OPTIONS``); return the
    ``stage2`` summary entry (``overwrite``: delete the labels of an
    earlier run in ``out_dir`` first; ``cfg_options``: the stage-1 config
    overrides the checkpoint was trained with)."""
    from mmengine.logging import MMLogger
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'stage-1 checkpoint not found: {checkpoint}')
    cfg = stage1_config(
        layout, osp.dirname(out_dir), preset, cfg_options=cfg_options)
    model, meta = load_stage1_model(cfg, checkpoint)
    dataset = build_label_dataset(cfg)
    run = run_stage2(
        model,
        dataset,
        out_dir,
        Stage2Options(
            workers=workers,
            num_vis=num_vis,
            labels=PseudoLabelConfig(**PRESET_LABEL_OPTIONS.get(preset, {}))),
        trained_classes=model_classes(cfg, meta),
        checkpoint=checkpoint,
        overwrite=overwrite)
    MMLogger.get_current_instance().info(describe(run, out_dir))
    metrics = run.get('metrics') or {}
    return dict(
        images=run['images'],
        written=run['written'],
        failed=len(run['failed']),
        restored_boxes=sum(item['boxes'] for item in run.get('restored', [])),
        left_out=len(metrics.get('errors') or []),
        seconds_per_image=run['seconds_per_image'],
        miou=metrics.get('miou', {}),
        s_share=metrics.get('s_share'),
        s_accuracy=metrics.get('s_accuracy'),
        out_dir=osp.abspath(out_dir),
        pictures=osp.abspath(osp.join(out_dir, 'vis')))
