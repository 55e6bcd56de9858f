"""Stage 3 of the BANA job: DeepLab + NAL on the stage-2 pseudo labels.

:func:`run_stage3` trains the config of ``preset`` (the same file a user runs
with ``tools/train.py``) on ``PSEUDO_LABEL_DIR/{Ycrf,Yret}``, evaluates the
last checkpoint on the validation split without and with DenseCRF
post-processing and returns the ``stage3`` entry of ``summary.json``.
mIoU values are in percent, as mmseg's ``IoUMetric`` reports them.
"""
from __future__ import annotations

import os.path as osp
import time
from typing import Optional

from ..utils.cli import merge_cfg_options
from ..utils.config_path import config_file
from .common import train_and_summarise, unique_experiment_name

#: Stage-3 config of each preset.
STAGE3_CONFIGS = {
    'tiny': 'deeplabv1_nal_tiny.py',
    'lite0': 'deeplabv3plus_lite0_nal_voc.py',
    'full': 'deeplabv2_nal_voc.py',
}


def stage3_config(data_root: str,
                  classes: tuple,
                  pseudo_label_dir: Optional[str],
                  work_dir: str,
                  preset: str = 'tiny',
                  max_iters: Optional[int] = None,
                  cfg_options: Optional[dict] = None,
                  train_split: str = 'ImageSets/Segmentation/train.txt',
                  val_split: str = 'ImageSets/Segmentation/val.txt'):
    """The stage-3 config of ``preset`` pointed at the data and labels
    (``pseudo_label_dir`` None: the ground-truth masks of the training
    images as both Ycrf and Yret, i.e. the fully supervised twin)."""
    from mmengine.config import Config
    if preset not in STAGE3_CONFIGS:
        raise ValueError(f'unknown preset {preset!r}; choose from '
                         f'{sorted(STAGE3_CONFIGS)}')
    for sub in ('Ycrf', 'Yret') if pseudo_label_dir is not None else ():
        if not osp.isdir(osp.join(pseudo_label_dir, sub)):
            raise FileNotFoundError(
                f'{pseudo_label_dir} has no {sub}/ folder of pseudo labels')
    from ..seg.datasets import with_background
    cfg = Config.fromfile(config_file('bana/' + STAGE3_CONFIGS[preset]))
    root = data_root.rstrip('/') + '/'
    meta = dict(classes=tuple(classes))
    cfg.train_dataloader.dataset.update(
        data_root=root,
        metainfo=meta,
        ann_file=train_split,
        pseudo_label_dir=None
        if pseudo_label_dir is None else osp.abspath(pseudo_label_dir))
    for key in ('val_dataloader', 'test_dataloader'):
        cfg[key].dataset.update(
            data_root=root,
            metainfo=meta,
            ann_file=val_split,
            pseudo_label_dir=None)
    cfg.model.decode_head.num_classes = len(with_background(classes))
    cfg.work_dir = work_dir
    cfg.experiment_name = unique_experiment_name('stage3')
    if max_iters is not None:
        cfg.train_cfg.max_iters = max_iters
        for scheduler in cfg.param_scheduler:
            if scheduler.get('end') is not None:
                scheduler.end = max_iters
        cfg.default_hooks.checkpoint.interval = max_iters
        for hook in cfg.get('custom_hooks', []):
            if hook.get('type') == 'ConfidenceMapHook':
                hook.interval = max_iters
    # evaluate once, after training (run_stage3 runs the test loop twice)
    cfg.train_cfg.val_interval = cfg.train_cfg.max_iters + 1
    cfg.default_hooks.logger.interval = max(1, cfg.train_cfg.max_iters // 10)
    merge_cfg_options(cfg, cfg_options)
    return cfg


def _miou(metrics: dict) -> float:
    """mmseg's ``mIoU`` of the test metrics (percent, 2 decimals)."""
    if 'mIoU' not in metrics:
        raise KeyError(f'no mIoU in the test metrics {sorted(metrics)}')
    return float(metrics['mIoU'])


def run_stage3(data_root: str,
               classes: tuple,
               pseudo_label_dir: Optional[str],
               work_dir: str,
               preset: str = 'tiny',
               max_iters: Optional[int] = None,
               cfg_options: Optional[dict] = None,
               train_split: str = 'ImageSets/Segmentation/train.txt',
               val_split: str = 'ImageSets/Segmentation/val.txt') -> dict:
    """Train DeepLab with NAL on Ycrf + Yret and evaluate on ``val_split``
    (``pseudo_label_dir`` None: on the ground truth, the fully supervised
    twin of the same config; NAL then reduces to the cross-entropy, as
    Ycrf = Yret leaves no ~S pixels).

    Returns:
        ``{"iters", "loss_first", "loss_last", "miou_val", "miou_val_crf",
        "checkpoint"}``; the mIoUs are in percent (without and with the
        test-time DenseCRF of the preset's config).
    """
    import bana_mm.seg  # noqa: F401
    start = time.time()
    cfg = stage3_config(data_root, classes, pseudo_label_dir, work_dir, preset,
                        max_iters, cfg_options, train_split, val_split)
    runner, entry = train_and_summarise(cfg, 'stage 3')
    model = runner.model.module if hasattr(runner.model, 'module') \
        else runner.model
    crf_cfg = model.test_cfg.setdefault('crf', dict())
    was_enabled = crf_cfg.get('enabled', False)
    try:
        crf_cfg['enabled'] = False
        miou = _miou(runner.test())
        crf_cfg['enabled'] = True
        miou_crf = _miou(runner.test())
    finally:
        crf_cfg['enabled'] = was_enabled
    return dict(
        entry,
        miou_val=miou,
        miou_val_crf=miou_crf,
        seconds=round(time.time() - start, 1))
