"""The steps of the MDH job (:mod:`bana_mm.apis.mdh`): the F / W splits,
the proposal step with its scores, the AnnNet / SegNet configs pointed at the
data, and training that reuses a run only when the step's inputs (its
fingerprint, :mod:`bana_mm.utils.step_record`) are unchanged.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

from ..core.baselines import GrabCutOptions
from ..evaluation.label_files import score_label_dir
from ..seg.mdh.label_writers import box_dataset, boxes_by_id, write_proposals
from ..utils.cli import merge_cfg_options
from ..utils.config_path import config_file
from ..utils.io import atomic_write_text, file_state, output_path, read_split
from ..utils.step_record import (FINGERPRINT_FILE, config_digest, digest,
                                 refresh_items, refresh_step)
from .common import train_and_summarise, unique_experiment_name

#: Default share of F among the training ids: the paper's 1464 / 10582.
PAPER_FULL_SHARE = 1464 / 10582
GT_SUBDIR = 'SegmentationClass'


def log(message: str) -> None:
    """Log to mmengine's current logger."""
    from mmengine.logging import print_log
    print_log(message, logger='current')


# ------------------------------------------------------------------ splits
@dataclass
class MDHSplits:
    """F (ground truth usable for training) and W (boxes only) ids."""
    full: List[str]
    weak: List[str]
    full_file: str
    weak_file: str


def default_full_ids(train_ids: Sequence[str],
                     share: float = PAPER_FULL_SHARE) -> List[str]:
    """``round(share * n)`` (at least 1) ids spread evenly over the sorted
    training ids: index ``floor(i * n / nF)`` for ``i < nF``."""
    ids = sorted(set(train_ids))
    n_full = max(1, int(round(share * len(ids))))
    return [ids[i * len(ids) // n_full] for i in range(n_full)]


def make_splits(data_root: str,
                train_split: str,
                out_dir: str,
                full_split: Optional[str] = None) -> MDHSplits:
    """Check F (``full_split``, default :func:`default_full_ids`) against
    the training split and the ground truth, write ``full.txt`` /
    ``weak.txt`` (absolute paths returned).

    Raises:
        ValueError: F ids not in the training split, an empty F (by
            :func:`~bana_mm.utils.io.read_split`) or W.
        FileNotFoundError: a missing list; F ids without a ground-truth
            PNG (named).
    """
    train = read_split(osp.join(data_root, train_split))
    full = (default_full_ids(train) if full_split is None else
            read_split(full_split))  # raises if empty or missing
    unknown = [i for i in full if i not in set(train)]
    if unknown:
        raise ValueError(f'{len(unknown)} id(s) of the full split '
                         f'{full_split} are not in the training split '
                         f'{train_split}: {unknown[:10]}')
    no_gt = [
        osp.join(data_root, GT_SUBDIR, f'{i}.png') for i in full
        if not osp.isfile(osp.join(data_root, GT_SUBDIR, f'{i}.png'))
    ]
    if no_gt:
        raise FileNotFoundError(f'{len(no_gt)} fully labelled id(s) have no '
                                f'ground-truth PNG: {no_gt[:10]}')
    weak = [i for i in train if i not in set(full)]
    if not weak:
        raise ValueError(f'every training id is in the full split '
                         f'{full_split}: W is empty, nothing to pseudo-label')
    os.makedirs(out_dir, exist_ok=True)
    files = {}
    for name, ids in (('full', full), ('weak', weak)):
        files[name] = osp.abspath(osp.join(out_dir, f'{name}.txt'))
        atomic_write_text(files[name], '\n'.join(ids) + '\n')
    return MDHSplits(full, weak, files['full'], files['weak'])


# ------------------------------------------------------------ data files
#: The files of an id that the MDH steps read (folder, suffix).
DATA_FILES = (('JPEGImages', '.jpg'), ('Annotations', '.xml'),
              (GT_SUBDIR, '.png'), ('SegmentationObject', '.png'))


def data_files_state(data_root: str, img_id: str) -> list:
    """:func:`~bana_mm.utils.io.file_state` of each of ``DATA_FILES`` of
    ``img_id``: an edited XML, a replaced image or mask changes it."""
    return [
        file_state(osp.join(data_root, sub, img_id + suffix))
        for sub, suffix in DATA_FILES
    ]


# --------------------------------------------------------------- proposals
def proposal_files(out_dir: str, img_id: str) -> List[str]:
    """The proposal mask and GrabCut baseline map of ``img_id``."""
    return [
        output_path(osp.join(out_dir, sub), img_id, '.png')
        for sub in ('masks', 'grabcut')
    ]


def sum_over_ranks(report: Dict[str, int]) -> Dict[str, int]:
    """Counts summed over ranks (also a barrier: every shard is done)."""
    from mmengine.dist import all_gather_object, get_world_size
    if get_world_size() == 1:
        return report
    return {k: sum(r[k] for r in all_gather_object(report)) for k in report}


def refresh_on_rank0(folder: str, fingerprint: str, step: str) -> bool:
    """:func:`~bana_mm.utils.step_record.refresh_step` on rank 0, then a
    barrier; True when ``folder``'s outputs may be reused."""
    from mmengine.dist import barrier, broadcast_object_list, is_main_process
    reuse = [refresh_step(folder, fingerprint, step)] if is_main_process() \
        else [None]
    broadcast_object_list(reuse)
    barrier()
    return bool(reuse[0])


def _ycrf_record(ycrf_dir: Optional[str]) -> Optional[str]:
    """The BANA stage-2 ``fingerprint.json`` beside ``Ycrf/`` (as text), so
    new Ycrf labels count as a changed input."""
    if ycrf_dir is None:
        return None
    path = osp.join(osp.dirname(osp.abspath(ycrf_dir)), FINGERPRINT_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return f.read()


def run_proposals(layout,
                  splits: MDHSplits,
                  out_dir: str,
                  ycrf_dir: Optional[str] = None,
                  grabcut: GrabCutOptions = GrabCutOptions(),
                  workers: int = 0) -> dict:
    """Proposal masks for W (GrabCut in ``workers`` processes), their scores
    and the Box / GrabCut baselines. Returns ``{"miou", "ignored_share",
    "second", ..., "baselines", "fingerprint"}``. Proposals of other inputs
    (W ids, second proposal, GrabCut options) in ``out_dir`` are
    cleared first."""
    from mmengine.dist import barrier, is_main_process
    if ycrf_dir is not None and not osp.isdir(ycrf_dir):
        raise FileNotFoundError(f'BANA Ycrf folder not found: {ycrf_dir}')
    fingerprint = digest(
        dict(
            step='proposals',
            data_root=osp.abspath(layout.root),
            weak=splits.weak,
            ycrf_dir=ycrf_dir and osp.abspath(ycrf_dir),
            ycrf_record=_ycrf_record(ycrf_dir),
            grabcut=asdict(grabcut)))
    refresh_on_rank0(out_dir, fingerprint, 'MDH proposals')
    states = {i: data_files_state(layout.root, i) for i in splits.weak}
    if is_main_process():
        refresh_items(out_dir, states, 'MDH proposals',
                      lambda i: proposal_files(out_dir, i))
    barrier()
    # what the next steps read: these proposals and every training id's files
    full_states = {i: data_files_state(layout.root, i) for i in splits.full}
    fingerprint = digest([fingerprint, states, full_states])
    start = time.perf_counter()
    dataset = box_dataset(layout.root, splits.weak_file, layout.classes)
    report = sum_over_ranks(
        write_proposals(dataset, out_dir, ycrf_dir, grabcut, workers))
    seconds = time.perf_counter() - start
    class_names = ('background', ) + tuple(layout.classes)
    gt_dir = osp.join(layout.root, GT_SUBDIR)
    scored = score_label_dir(
        osp.join(out_dir, 'masks'), splits.weak, gt_dir, class_names,
        boxes_by_id(dataset))
    grabcut_scores = score_label_dir(
        osp.join(out_dir, 'grabcut'), splits.weak, gt_dir, class_names)
    box_miou = scored.pop('box')
    entry = dict(
        scored,
        second='ycrf' if ycrf_dir else 'box',
        ycrf_dir=ycrf_dir and osp.abspath(ycrf_dir),
        **{
            f'grabcut_{key}': value
            for key, value in asdict(grabcut).items()
        },
        out_dir=osp.abspath(osp.join(out_dir, 'masks')),
        baselines=dict(box=box_miou, grabcut=grabcut_scores['miou']),
        seconds=round(seconds, 1),
        fingerprint=fingerprint,
        **report)
    if is_main_process():
        atomic_write_text(
            osp.join(out_dir, 'run.json'),
            json.dumps(entry, indent=2) + '\n')
    return entry


# ------------------------------------------------------- AnnNet / SegNet
def mdh_config(name: str,
               layout,
               splits: MDHSplits,
               weak_label_dir: str,
               work_dir: str,
               max_iters: Optional[int] = None,
               cfg_options: Optional[dict] = None):
    """An 'mdh' config (``configs/mdh/<name>`` found by
    :func:`~bana_mm.utils.config_path.config_file`, or a config file path)
    pointed at the data: the
    training split with F = ``splits.full_file`` and W's labels in
    ``weak_label_dir``; val and test on the val split."""
    from mmengine.config import Config

    cfg = Config.fromfile(
        config_file(name if osp.isfile(name) else f'mdh/{name}'))
    root = layout.root.rstrip('/') + '/'
    meta = dict(classes=tuple(layout.classes))
    cfg.train_dataloader.dataset.update(
        data_root=root,
        ann_file=layout.train_split,
        metainfo=meta,
        full_split=splits.full_file,
        weak_label_dir=osp.abspath(weak_label_dir))
    for key in ('val_dataloader', 'test_dataloader'):
        cfg[key].dataset.update(
            data_root=root, metainfo=meta, ann_file=layout.val_split)
    for key in ('decode_head', 'auxiliary_head'):
        heads = cfg.model.get(key)
        for head in (heads if isinstance(heads, list) else [heads]):
            if head is not None and 'num_classes' in head:
                head.num_classes = len(layout.classes) + 1
    cfg.work_dir = work_dir
    cfg.experiment_name = unique_experiment_name(
        osp.splitext(osp.basename(name))[0].split('_')[0])
    if max_iters is not None:
        cfg.train_cfg.max_iters = max_iters
        for scheduler in cfg.get('param_scheduler', []):
            if scheduler.get('end') is not None:
                scheduler.end = max_iters
        cfg.default_hooks.checkpoint.interval = max_iters
    # evaluate once, after training (the pipeline runs the test loop)
    cfg.train_cfg.val_interval = cfg.train_cfg.max_iters + 1
    cfg.default_hooks.logger.interval = max(1, cfg.train_cfg.max_iters // 10)
    merge_cfg_options(cfg, cfg_options)
    return cfg


def f_only_config(name: str,
                  layout,
                  splits: MDHSplits,
                  work_dir: str,
                  max_iters: Optional[int] = None,
                  cfg_options: Optional[dict] = None):
    """The SegNet config ``name`` trained on F alone (the reference of the
    semi-supervised SegNet): the training split is F, every batch holds F
    images only (no F:W mixing), the same model, schedule and val."""
    cfg = mdh_config(name, layout, splits, splits.full_file, work_dir,
                     max_iters, cfg_options)
    loader = cfg.train_dataloader
    loader.dataset.ann_file = splits.full_file
    loader.pop('batch_sampler', None)
    loader.sampler = dict(type='InfiniteSampler', shuffle=True)
    return cfg


def training_fingerprint(cfg, inputs: str) -> str:
    """What a training run depends on: its config (without the experiment
    name) and the fingerprint of the labels it reads."""
    return digest([config_digest(cfg), inputs])


def train_or_reuse(cfg, stage: str, inputs: str):
    """Train ``cfg`` (:func:`~bana_mm.apis.common.train_and_summarise`)
    unless its work dir holds a run of the same config on the same inputs
    (``inputs``: the fingerprint of the label step it reads) with
    ``summary_entry.json`` and the checkpoint; a work dir of other inputs is
    cleared first. Returns (runner, entry); the entry also holds
    ``fingerprint`` and ``miou_val`` (percent) of the validation mmengine
    runs after the last iteration."""
    from mmengine.runner import Runner

    fingerprint = training_fingerprint(cfg, inputs)
    record = osp.join(cfg.work_dir, 'summary_entry.json')
    if refresh_on_rank0(cfg.work_dir, fingerprint,
                        stage) and osp.isfile(record):
        with open(record) as f:
            entry = json.load(f)
        if osp.isfile(entry.get('checkpoint', '')):
            log(f'{stage}: reusing {entry["checkpoint"]}')
            runner = Runner.from_cfg(cfg)
            runner.load_checkpoint(entry['checkpoint'], map_location='cpu')
            return runner, entry
    start = time.perf_counter()
    runner, entry = train_and_summarise(cfg, stage)
    entry['seconds'] = round(time.perf_counter() - start, 1)
    if 'val/mIoU' in runner.message_hub.log_scalars:
        entry['miou_val'] = round(
            float(runner.message_hub.get_scalar('val/mIoU').current()), 2)
    entry['fingerprint'] = fingerprint
    atomic_write_text(record, json.dumps(entry, indent=2) + '\n')
    return runner, entry


def earlier_segnet(cfg, inputs: str) -> Optional[dict]:
    """The summary entry of a SegNet already trained in ``cfg.work_dir`` on
    these inputs (by a run with fewer rounds), else None."""
    record = osp.join(cfg.work_dir, 'summary_entry.json')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        entry = json.load(f)
    if entry.get('fingerprint') != training_fingerprint(cfg, inputs):
        return None
    return train_entry(entry)


def train_entry(entry: dict) -> dict:
    return {
        k: entry[k]
        for k in ('iters', 'loss_first', 'loss_last', 'checkpoint', 'seconds',
                  'miou_val', 'fingerprint') if k in entry
    }
