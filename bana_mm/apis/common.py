"""Helpers shared by the stage runners of the one-command pipeline: the
VOC-layout folder, training through mmengine's Runner with a loss summary,
``summary.json`` and the embedded default dataset."""
from __future__ import annotations

import copy
import json
import os.path as osp
import time
import uuid
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..utils.io import atomic_write_text


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
        classes = (
            read_class_names(names_file)
            if osp.isfile(names_file) else VOC_CLASSES)
        return cls(
            root=root,
            classes=classes,
            train_split=splits['train'],
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
    """Train ``cfg`` with mmengine's Runner (training stops at the first
    non-finite loss: :class:`~bana_mm.engine.FiniteLossHook`); return the
    runner and
    ``{"iters", "loss_first", "loss_last", "checkpoint"}``."""
    from mmengine.runner import Runner

    from ..engine import add_default_hooks
    cfg = copy.deepcopy(cfg)  # the caller's config (and its digest) stays
    add_default_hooks(cfg)
    if cfg.get('visualizer') is not None and cfg.get('experiment_name'):
        # mmengine returns an existing Visualizer of the same name, with the
        # save_dir of an earlier run in this process: give each run its own
        cfg.visualizer['name'] = f'visualizer_{cfg.experiment_name}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    loss_first, loss_last = window_means(losses)
    checkpoint = osp.join(cfg.work_dir, f'iter_{runner.iter}.pth')
    if not osp.isfile(checkpoint):
        raise RuntimeError(f'{stage} finished but {checkpoint} is missing')
    return runner, dict(
        iters=int(runner.iter),
        loss_first=loss_first,
        loss_last=loss_last,
        checkpoint=osp.abspath(checkpoint))


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
    if not osp.isfile(osp.join(root, 'ImageSets', 'Segmentation', 'val.txt')):
        from ..datagen import generate_synthetic_dataset
        generate_synthetic_dataset(root, seed=seed)
    return root


def previous_entry(summary_path: str, stage: str, key: str) -> str:
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
