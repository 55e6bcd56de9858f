"""The MDH job (Chen et al., "Mixed-dual-head Meets Box Priors", SPEC §5):
proposal masks for W (§3.1) -> AnnNet (5-channel input with priors,
mixed-dual-head) -> pseudo masks for W (eq. 3) [-> rounds, Table 6] ->
SegNet, evaluated on val. ``tools/run_pipeline.py --method mdh`` calls
:func:`run_mdh_pipeline`; docs/mdh.md lists the choices the paper leaves open.

Over 400 lines for now: like the other stage modules of ``apis`` it holds
one method's whole job (splits, label writers, AnnNet rounds, SegNet); the
label writers and their scores are the part to move out next.

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

import numpy as np

from ..core.baselines import box_baseline, grabcut_mask
from ..core.mdh_proposals import (check_tau, paint_by_box_area, proposal_mask,
                                  pseudo_mask_from_probs)
from ..utils.config_path import config_file
from ..utils.io import atomic_write_bytes, atomic_write_text, read_split
from ..utils.label_io import read_label_png, write_label_png
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
def box_dataset(data_root: str, ann_file: str, classes: Sequence[str]):
    """Boxes of ``ann_file``'s ids, as AnnNet's priors see them:
    :class:`~bana_mm.seg.mdh.MDHVOCDataset` (VOC XML, else boxes derived from
    the masks) without a pipeline (``get_data_info`` only)."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS

    import bana_mm.seg  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmseg'):
        return DATASETS.build(
            dict(
                type='MDHVOCDataset',
                data_root=data_root.rstrip('/') + '/',
                ann_file=ann_file,
                metainfo=dict(classes=tuple(classes)),
                pipeline=[]))


def boxes_of(info: dict):
    """(N, 4) float32 boxes and (N,) int64 0-based labels of a data info
    (the dataset's labels are segmentation indices, background 0)."""
    return (np.asarray(info['gt_bboxes'], np.float32).reshape(-1, 4),
            np.asarray(info['gt_bboxes_labels'], np.int64).reshape(-1) - 1)


def _shard(dataset) -> List[int]:
    from mmengine.dataset import DefaultSampler
    return list(DefaultSampler(dataset, shuffle=False, round_up=False))


def _progress(total: int):
    from mmengine.dist import is_main_process
    from mmengine.utils import ProgressBar
    return ProgressBar(total) if is_main_process() and total else None


def _sum_over_ranks(report: Dict[str, int]) -> Dict[str, int]:
    """Counts summed over ranks (also a barrier: every shard is done)."""
    from mmengine.dist import all_gather_object, get_world_size
    if get_world_size() == 1:
        return report
    return {k: sum(r[k] for r in all_gather_object(report)) for k in report}


def write_proposals(dataset,
                    out_dir: str,
                    ycrf_dir: Optional[str] = None,
                    grabcut_iterations: int = 5) -> dict:
    """Proposal masks (and the GrabCut baseline) of this rank's shard."""
    import mmcv
    report = dict(written=0, skipped=0)
    indices = _shard(dataset)
    bar = _progress(len(indices))
    for idx in indices:
        info = dataset.get_data_info(idx)
        stem = info['img_id']
        target = osp.join(out_dir, 'masks', f'{stem}.png')
        if osp.isfile(target):
            report['skipped'] += 1
        else:
            image = mmcv.imread(info['img_path'])
            if image is None:
                raise ValueError(f'cannot read image {info["img_path"]}')
            boxes, labels = boxes_of(info)
            hw = image.shape[:2]
            gcs = [grabcut_mask(image, b, grabcut_iterations) for b in boxes]
            ycrf = None
            if ycrf_dir is not None:
                ycrf = read_label_png(osp.join(ycrf_dir, f'{stem}.png'))
            write_label_png(
                osp.join(out_dir, 'grabcut', f'{stem}.png'),
                paint_by_box_area(gcs, boxes, labels, hw))
            # the proposal last: an id counts as done once it exists
            write_label_png(target, proposal_mask(gcs, boxes, labels, hw,
                                                  ycrf))
            report['written'] += 1
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.file.write('\n')
    return report


def score_label_dir(label_dir: str,
                    ids: Sequence[str],
                    data_root: str,
                    class_names: Sequence[str],
                    boxes_by_id=None) -> Dict[str, Optional[float]]:
    """Scores of ``label_dir/<id>.png`` against the ground truth of the ids
    that have one: ``miou`` (percent; ignored pixels count as misses, as in
    mmseg), ``miou_labelled`` (only where the map is not 255) and
    ``ignored_share`` over all ids. ``boxes_by_id`` ({id: (boxes, labels)})
    also scores the Box baseline: returns ``{"maps": ..., "box": ...}``."""
    from ..evaluation import SemanticScores
    scores = {
        k: SemanticScores(class_names)
        for k in ('all', 'labelled', 'box')
    }
    ignored = total = 0
    for stem in ids:
        pred = read_label_png(osp.join(label_dir, f'{stem}.png'))
        ignored += int((pred == 255).sum())
        total += pred.size
        gt_path = osp.join(data_root, GT_SUBDIR, f'{stem}.png')
        if osp.isfile(gt_path):
            gt = read_label_png(gt_path)
            scores['all'].add(pred, gt)
            scores['labelled'].add(pred, np.where(pred == 255, 255, gt))
            if boxes_by_id is not None:
                scores['box'].add(
                    box_baseline(*boxes_by_id[stem], gt.shape), gt)
    miou = {k: s.results()['miou'] for k, s in scores.items()}  # percent
    entry = dict(
        miou=miou['all'],
        miou_labelled=miou['labelled'],
        ignored_share=round(100.0 * ignored / total, 2) if total else None,
        images=len(ids),
        evaluated=scores['all'].images)
    if boxes_by_id is not None:
        return dict(maps=entry, box=miou['box'])
    return entry


def run_proposals(layout,
                  splits: MDHSplits,
                  out_dir: str,
                  ycrf_dir: Optional[str] = None,
                  grabcut_iterations: int = 5) -> dict:
    """Proposal masks for W, their scores and the Box / GrabCut baselines.
    Returns ``{"miou", "ignored_share", "second", ..., "baselines"}``."""
    from mmengine.dist import is_main_process
    if ycrf_dir is not None and not osp.isdir(ycrf_dir):
        raise FileNotFoundError(f'BANA Ycrf folder not found: {ycrf_dir}')
    start = time.perf_counter()
    dataset = box_dataset(layout.root, splits.weak_file, layout.classes)
    report = write_proposals(dataset, out_dir, ycrf_dir, grabcut_iterations)
    report = _sum_over_ranks(report)
    seconds = time.perf_counter() - start
    class_names = ('background', ) + tuple(layout.classes)
    boxes = {
        dataset.get_data_info(i)['img_id']: boxes_of(dataset.get_data_info(i))
        for i in range(len(dataset))
    }
    scored = score_label_dir(
        osp.join(out_dir, 'masks'), splits.weak, layout.root, class_names,
        boxes)
    grabcut = score_label_dir(
        osp.join(out_dir, 'grabcut'), splits.weak, layout.root, class_names)
    entry = dict(
        scored['maps'],
        second='ycrf' if ycrf_dir else 'box',
        ycrf_dir=ycrf_dir and osp.abspath(ycrf_dir),
        grabcut_iterations=grabcut_iterations,
        out_dir=osp.abspath(osp.join(out_dir, 'masks')),
        baselines=dict(box=scored['box'], grabcut=grabcut['miou']),
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
    """An 'mdh' config (``configs/mdh/<name>``, found by
    :func:`~bana_mm.utils.config_path.config_file`) pointed at the data: the
    training split with F = ``splits.full_file`` and W's labels in
    ``weak_label_dir``; val and test on the val split."""
    from mmengine.config import Config

    cfg = Config.fromfile(config_file(f'mdh/{name}'))
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
        osp.splitext(name)[0].split('_')[0])
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
    earlier run; returns (runner, entry)."""
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
    atomic_write_text(record, json.dumps(entry, indent=2) + '\n')
    return runner, entry


def write_pseudo_masks(runner,
                       cfg,
                       splits: MDHSplits,
                       out_dir: str,
                       tau: float = 0.9,
                       boxes_by_id: Optional[dict] = None) -> dict:
    """Eq. 3 for every W id without a PNG in ``out_dir``: AnnNet's strong
    head (``model.test_step`` on the config's 5-channel test pipeline),
    softmax, argmax where the max > τ, else 255. ``boxes_by_id`` turns on
    the optional box constraint."""
    import copy

    import torch
    from mmengine.dist import get_rank
    from mmengine.runner import Runner
    todo = [
        i for i in splits.weak
        if not osp.isfile(osp.join(out_dir, f'{i}.png'))
    ]
    report = dict(written=0, skipped=len(splits.weak) - len(todo))
    if not todo:
        return report
    os.makedirs(out_dir, exist_ok=True)
    todo_file = osp.abspath(osp.join(out_dir, f'.todo_rank{get_rank()}.txt'))
    atomic_write_text(todo_file, '\n'.join(todo) + '\n')
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg.dataset.ann_file = todo_file
    loader_cfg.batch_size = 1
    loader_cfg.sampler = dict(
        type='DefaultSampler', shuffle=False, round_up=False)
    loader = Runner.build_dataloader(loader_cfg)
    model = runner.model.module if hasattr(runner.model, 'module') \
        else runner.model
    model.eval()
    bar = _progress(len(loader))
    with torch.no_grad():
        for batch in loader:
            for sample in model.test_step(batch):
                stem = osp.splitext(osp.basename(sample.img_path))[0]
                probs = sample.seg_logits.data.float().softmax(dim=0)
                box, lab = (
                    boxes_by_id[stem] if boxes_by_id is not None else
                    (None, None))
                write_label_png(
                    osp.join(out_dir, f'{stem}.png'),
                    pseudo_mask_from_probs(probs.cpu(), tau, box, lab))
                report['written'] += 1
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.file.write('\n')
    os.unlink(todo_file)
    return report


# ------------------------------------------------------------- pictures
def write_sheets(layout, dataset, stems: Sequence[str], out_dir: str,
                 proposal_dir: str, pseudo_dir: str) -> List[str]:
    """:func:`~bana_mm.visualization.mdh_sheet.mdh_sheet` of ``stems`` as
    ``out_dir/<id>.jpg``."""
    import cv2

    from ..visualization.mdh_sheet import mdh_sheet_from_files
    infos = {
        dataset.get_data_info(i)['img_id']: dataset.get_data_info(i)
        for i in range(len(dataset))
    }
    written = []
    for stem in stems:
        info = infos[stem]
        sheet = mdh_sheet_from_files(
            info['img_path'], *boxes_of(info), layout.classes, [
                osp.join(d, f'{stem}.png')
                for d in (proposal_dir, pseudo_dir,
                          osp.join(layout.root, GT_SUBDIR))
            ])
        ok, encoded = cv2.imencode('.jpg', sheet[..., ::-1],
                                   [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            written.append(osp.join(out_dir, f'{stem}.jpg'))
            atomic_write_bytes(written[-1], encoded.tobytes())
    return written


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
        for k in ('iters', 'loss_first', 'loss_last', 'checkpoint', 'seconds')
        if k in entry
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
                     mix_ratio: Optional[Sequence[float]] = None) -> dict:
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
                              ycrf_dir, grabcut_iterations)
    _log(f'MDH proposals ({proposals["second"]} as second proposal): mIoU '
         f'{proposals["miou"]} %, ignored {proposals["ignored_share"]} %')
    class_names = ('background', ) + tuple(layout.classes)
    boxes = None
    if box_constraint:
        dataset = box_dataset(layout.root, splits.weak_file, layout.classes)
        boxes = {
            dataset.get_data_info(i)['img_id']:
            boxes_of(dataset.get_data_info(i))
            for i in range(len(dataset))
        }
    annnet_cfg, segnet_cfg = MDH_CONFIGS[preset]
    weak_dir, history = proposals['out_dir'], []
    for k in range(1, int(rounds) + 1):
        round_dir = osp.join(work_dir, f'round{k}')
        cfg = mdh_config(annnet_cfg, layout, splits, weak_dir,
                         osp.join(round_dir, 'annnet'), max_iters, options)
        runner, annnet = train_or_reuse(cfg, f'AnnNet round {k}')
        pseudo_dir = osp.join(round_dir, 'pseudo')
        start = time.perf_counter()
        report = _sum_over_ranks(
            write_pseudo_masks(runner, cfg, splits, pseudo_dir, tau, boxes))
        pseudo = score_label_dir(pseudo_dir, splits.weak, layout.root,
                                 class_names)
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
    start = time.perf_counter()
    metrics = runner.test()
    segnet = dict(
        _train_entry(segnet),
        miou_val=round(float(metrics['mIoU']), 2),
        test_seconds=round(time.perf_counter() - start, 1))
    pictures = []
    if is_main_process() and num_vis > 0:
        dataset = box_dataset(layout.root, splits.weak_file, layout.classes)
        pictures = write_sheets(layout, dataset, splits.weak[:num_vis],
                                osp.join(work_dir, 'vis'),
                                proposals['out_dir'], weak_dir)
    entry = dict(
        full=len(splits.full),
        weak=len(splits.weak),
        rounds=len(history),
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
