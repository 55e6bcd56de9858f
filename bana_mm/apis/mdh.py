"""The MDH job (Chen et al., "Mixed-dual-head Meets Box Priors", SPEC §5):
proposal masks for W (§3.1) -> AnnNet (5-channel input with priors,
mixed-dual-head) -> pseudo masks for W (eq. 3) [-> rounds, Table 6] ->
SegNet, evaluated on val. ``tools/run_pipeline.py --method mdh`` calls
:func:`run_mdh_pipeline`; docs/mdh.md lists the choices the paper leaves open.

The label writers are in :mod:`bana_mm.seg.mdh.label_writers`, their
scores in :func:`bana_mm.evaluation.label_files.score_label_dir`; this module
holds the splits, the configs and the order of the steps.

Work folder::

    WORK/splits/{full,weak}.txt          F and W ids
    WORK/proposals/masks/<id>.png        proposal masks (0 bg, c, 255 ignore)
    WORK/proposals/grabcut/<id>.png      the GrabCut baseline of paper Table 1
    WORK/proposals/run.json              second proposal used, counts, time
    WORK/round<k>/annnet/                AnnNet work dir of round k
    WORK/round<k>/pseudo/<id>.png        its pseudo masks for W
    WORK/segnet/                         SegNet work dir
    WORK/vis/<id>.jpg                    sheets: image, priors, masks, GT
    WORK/summary.json                    the ``mdh`` entry

Label PNGs are written atomically; a rerun skips ids whose PNG exists and
rounds whose AnnNet checkpoint exists. Images are sharded over ranks with
``DefaultSampler(round_up=False)``.
"""
from __future__ import annotations

import json
import logging
import os
import os.path as osp
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ..core.mdh_proposals import check_tau
from ..evaluation.label_files import score_label_dir
from ..seg.mdh.label_writers import (box_dataset, boxes_by_id, write_proposals,
                                     write_pseudo_masks, write_sheets)
from ..utils.config_path import config_file
from ..utils.io import atomic_write_text, read_split
from .common import (VOCLayout, ensure_default_dataset, train_and_summarise,
                     unique_experiment_name, update_summary)

#: (AnnNet, SegNet) config of each preset.
MDH_CONFIGS = {
    'tiny': ('annnet_tiny.py', 'segnet_tiny.py'),
    'full': ('annnet_hrnetv2-w48_voc.py', 'segnet_deeplabv3plus_r50_voc.py'),
}
#: Default share of F among the training ids: the paper's 1464 / 10582.
PAPER_FULL_SHARE = 1464 / 10582
GT_SUBDIR = 'SegmentationClass'


def _log(message: str, level: int = logging.INFO) -> None:
    from mmengine.logging import print_log
    print_log(message, logger='current', level=level)


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


# --------------------------------------------------------------- proposals
def _sum_over_ranks(report: Dict[str, int]) -> Dict[str, int]:
    """Counts summed over ranks (also a barrier: every shard is done)."""
    from mmengine.dist import all_gather_object, get_world_size
    if get_world_size() == 1:
        return report
    return {k: sum(r[k] for r in all_gather_object(report)) for k in report}


def run_proposals(layout,
                  splits: MDHSplits,
                  out_dir: str,
                  ycrf_dir: Optional[str] = None,
                  grabcut_iterations: int = 5,
                  workers: int = 0) -> dict:
    """Proposal masks for W (GrabCut in ``workers`` processes), their scores
    and the Box / GrabCut baselines. Returns ``{"miou", "ignored_share",
    "second", ..., "baselines"}``."""
    from mmengine.dist import is_main_process
    if ycrf_dir is not None and not osp.isdir(ycrf_dir):
        raise FileNotFoundError(f'BANA Ycrf folder not found: {ycrf_dir}')
    start = time.perf_counter()
    dataset = box_dataset(layout.root, splits.weak_file, layout.classes)
    report = _sum_over_ranks(
        write_proposals(dataset, out_dir, ycrf_dir, grabcut_iterations,
                        workers))
    seconds = time.perf_counter() - start
    class_names = ('background', ) + tuple(layout.classes)
    gt_dir = osp.join(layout.root, GT_SUBDIR)
    scored = score_label_dir(
        osp.join(out_dir, 'masks'), splits.weak, gt_dir, class_names,
        boxes_by_id(dataset))
    grabcut = score_label_dir(
        osp.join(out_dir, 'grabcut'), splits.weak, gt_dir, class_names)
    box_miou = scored.pop('box')
    entry = dict(
        scored,
        second='ycrf' if ycrf_dir else 'box',
        ycrf_dir=ycrf_dir and osp.abspath(ycrf_dir),
        grabcut_iterations=grabcut_iterations,
        out_dir=osp.abspath(osp.join(out_dir, 'masks')),
        baselines=dict(box=box_miou, grabcut=grabcut['miou']),
        seconds=round(seconds, 1),
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
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def train_or_reuse(cfg, stage: str):
    """Train ``cfg`` (:func:`~bana_mm.apis.common.train_and_summarise`)
    unless ``work_dir/summary_entry.json`` and its checkpoint exist from an
    earlier run; returns (runner, entry). The entry also holds ``miou_val``
    (percent) of the validation mmengine runs after the last iteration."""
    from mmengine.runner import Runner

    record = osp.join(cfg.work_dir, 'summary_entry.json')
    if osp.isfile(record):
        with open(record) as f:
            entry = json.load(f)
        if osp.isfile(entry.get('checkpoint', '')):
            _log(f'{stage}: reusing {entry["checkpoint"]}')
            runner = Runner.from_cfg(cfg)
            runner.load_checkpoint(entry['checkpoint'], map_location='cpu')
            return runner, entry
    start = time.perf_counter()
    runner, entry = train_and_summarise(cfg, stage)
    entry['seconds'] = round(time.perf_counter() - start, 1)
    if 'val/mIoU' in runner.message_hub.log_scalars:
        entry['miou_val'] = round(
            float(runner.message_hub.get_scalar('val/mIoU').current()), 2)
    atomic_write_text(record, json.dumps(entry, indent=2) + '\n')
    return runner, entry


# ------------------------------------------------------------------ all
def _ycrf_from_summary(summary_path: str) -> Optional[str]:
    """BANA's Ycrf folder recorded by a ``--method bana`` stage-2 run in the
    same work dir, if any."""
    if not osp.isfile(summary_path):
        return None
    with open(summary_path) as f:
        out_dir = (json.load(f).get('stage2') or {}).get('out_dir')
    folder = out_dir and osp.join(out_dir, 'Ycrf')
    return folder if folder and osp.isdir(folder) else None


def _train_entry(entry: dict) -> dict:
    return {
        k: entry[k]
        for k in ('iters', 'loss_first', 'loss_last', 'checkpoint', 'seconds',
                  'miou_val') if k in entry
    }


def run_mdh_pipeline(work_dir: str,
                     data_root: Optional[str] = None,
                     preset: str = 'tiny',
                     full_split: Optional[str] = None,
                     rounds: int = 1,
                     tau: float = 0.9,
                     bana_labels: Optional[str] = None,
                     max_iters: Optional[int] = None,
                     box_constraint: bool = False,
                     num_vis: int = 4,
                     grabcut_iterations: int = 5,
                     mix_ratio: Optional[Sequence[float]] = None,
                     workers: int = 2,
                     annnet_config: Optional[str] = None,
                     segnet_config: Optional[str] = None) -> dict:
    """Proposals -> AnnNet -> pseudo masks (x ``rounds``) -> SegNet.

    Args:
        work_dir: output folder (layout in the module docstring).
        data_root: VOC-layout folder with ``SegmentationClass``; None
            generates the embedded synthetic dataset.
        preset: ``'tiny'`` (CPU) or ``'full'`` (paper recipe).
        full_split: file of F ids; default :func:`default_full_ids`.
        rounds: AnnNet rounds; round k+1 trains on round k's pseudo masks.
        tau: eq. 3 threshold in (0, 1).
        bana_labels: a BANA stage-2 output folder (``Ycrf/``) as the second
            proposal; default: the ``stage2`` of ``WORK/summary.json`` if
            any, else the boxes.
        max_iters: override the iterations of AnnNet and SegNet.
        box_constraint: also drop pseudo-mask classes outside their boxes.
        mix_ratio: F:W ratio r of the strong heads (default: the configs',
            7:1); a zero part is an error.
        workers: GrabCut processes of the proposals (0: the main process).
        annnet_config / segnet_config: replace the preset's config: a name
            in ``configs/mdh/`` (e.g. ``annnet_tiny_nopriors.py`` for paper
            Table 2, ``*_single.py`` / ``*_dual.py`` for Table 4) or a path.

    Returns:
        the updated summary (its ``mdh`` entry as in issue 11).
    """
    from mmengine.dist import is_main_process

    tau = check_tau(tau)
    options = None
    if mix_ratio is not None:
        from ..seg.mdh.sampler import check_ratio
        options = {
            'model.decode_head.mix_ratio':
            list(check_ratio(mix_ratio, 'mix_ratio (r)'))
        }
    if preset not in MDH_CONFIGS:
        raise ValueError(f'unknown preset {preset!r}; choose from '
                         f'{sorted(MDH_CONFIGS)}')
    if int(rounds) < 1:
        raise ValueError(f'rounds must be >= 1; got {rounds}')
    os.makedirs(work_dir, exist_ok=True)
    if data_root is None:
        data_root = ensure_default_dataset(
            osp.join(work_dir, 'synthetic_data'))
    layout = VOCLayout.inspect(data_root)
    if layout.val_split is None:
        raise FileNotFoundError(f'{data_root}: SegNet is evaluated on a val '
                                'split; no ImageSets/*/val.txt found')
    summary_path = osp.join(work_dir, 'summary.json')
    splits = make_splits(layout.root, layout.train_split,
                         osp.join(work_dir, 'splits'), full_split)
    _log(f'MDH: F = {len(splits.full)} ids ({splits.full_file}), '
         f'W = {len(splits.weak)} ids')
    ycrf_dir = (
        osp.join(bana_labels, 'Ycrf')
        if bana_labels else _ycrf_from_summary(summary_path))
    proposals = run_proposals(layout, splits, osp.join(work_dir, 'proposals'),
                              ycrf_dir, grabcut_iterations, workers)
    _log(f'MDH proposals ({proposals["second"]} as second proposal): mIoU '
         f'{proposals["miou"]} %, ignored {proposals["ignored_share"]} %')
    class_names = ('background', ) + tuple(layout.classes)
    boxes = None
    if box_constraint:
        boxes = boxes_by_id(
            box_dataset(layout.root, splits.weak_file, layout.classes))
    annnet_cfg, segnet_cfg = MDH_CONFIGS[preset]
    annnet_cfg = annnet_config or annnet_cfg
    segnet_cfg = segnet_config or segnet_cfg
    weak_dir, history = proposals['out_dir'], []
    for k in range(1, int(rounds) + 1):
        round_dir = osp.join(work_dir, f'round{k}')
        cfg = mdh_config(annnet_cfg, layout, splits, weak_dir,
                         osp.join(round_dir, 'annnet'), max_iters, options)
        runner, annnet = train_or_reuse(cfg, f'AnnNet round {k}')
        pseudo_dir = osp.join(round_dir, 'pseudo')
        start = time.perf_counter()
        report = _sum_over_ranks(
            write_pseudo_masks(runner, cfg, splits.weak, pseudo_dir, tau,
                               boxes))
        pseudo = score_label_dir(pseudo_dir, splits.weak,
                                 osp.join(layout.root, GT_SUBDIR), class_names)
        pseudo.update(
            report,
            tau=tau,
            box_constraint=box_constraint,
            out_dir=osp.abspath(pseudo_dir),
            seconds=round(time.perf_counter() - start, 1))
        _log(f'MDH round {k} pseudo masks: mIoU {pseudo["miou"]} %, ignored '
             f'{pseudo["ignored_share"]} %')
        history.append(
            dict(
                round=k,
                trained_on=osp.abspath(weak_dir),
                annnet=_train_entry(annnet),
                pseudo=pseudo))
        weak_dir = pseudo_dir
        del runner
    cfg = mdh_config(segnet_cfg, layout, splits, weak_dir,
                     osp.join(work_dir, 'segnet'), max_iters, options)
    runner, segnet = train_or_reuse(cfg, 'SegNet')
    segnet = _train_entry(segnet)
    if 'miou_val' not in segnet:  # trained without a val loop
        start = time.perf_counter()
        segnet.update(
            miou_val=round(float(runner.test()['mIoU']), 2),
            test_seconds=round(time.perf_counter() - start, 1))
    pictures = []
    if is_main_process() and num_vis > 0:
        dataset = box_dataset(layout.root, splits.weak_file, layout.classes)
        pictures = write_sheets(
            dataset, layout.classes, splits.weak[:num_vis],
            osp.join(work_dir, 'vis'),
            (proposals['out_dir'], weak_dir, osp.join(layout.root, GT_SUBDIR)))
    entry = dict(
        full=len(splits.full),
        weak=len(splits.weak),
        rounds=len(history),
        configs=dict(annnet=annnet_cfg, segnet=segnet_cfg),
        splits=dict(full=splits.full_file, weak=splits.weak_file),
        proposals={
            k: v
            for k, v in proposals.items() if k != 'baselines'
        },
        annnet=history[-1]['annnet'],
        pseudo=history[-1]['pseudo'],
        segnet=segnet,
        baselines=proposals['baselines'],
        history=history,
        pictures=pictures)
    if is_main_process():
        return update_summary(summary_path, dict(mdh=entry))
    return dict(mdh=entry)
