"""Scores of stage-2 label files against ground truth (paper Tables 1-2).

Reads the PNGs back from disk, so the scores are the same after a resume or
a multi-rank run: mIoU (mmseg's IoU maths) of Ycrf, Yret and the Box /
GrabCut baselines, the share of S and the accuracy of Ycrf on S, all in
percent as mmseg's ``IoUMetric`` reports them; for COCO input, the
pseudo-mask AP of the RLE jsons (pycocotools) in [0, 1] as mmdet's
``CocoMetric`` reports it. ``metrics.json`` states this in its ``units``.
"""
from __future__ import annotations

import json
import logging
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.baselines import box_baseline, grabcut_baseline
from ..utils.label_io import check_label_map, read_label_png
from ..utils.label_layout import MAPS, image_stem, label_path
from ..utils.worker_pool import WorkerPool
from .pseudo_label_metrics import AgreementScores, SemanticScores, coco_mask_ap

#: The ``units`` entry of ``metrics.json``.
UNITS = {
    'miou': 'percent (mmseg IoUMetric), 2 decimals',
    'per_class': 'percent (IoU), 2 decimals',
    's_share': 'percent of the labelled Ycrf pixels, 2 decimals',
    's_accuracy': 'percent, 2 decimals',
    'coco_ap': '0-1 (mmdet CocoMetric), 3 decimals',
}


@dataclass
class EvalJob:
    """One image's inputs to :func:`evaluation_maps`."""
    stem: str
    img_path: str
    gt_path: Optional[str]
    out_dir: str
    boxes: np.ndarray
    labels: np.ndarray
    grabcut: bool
    grabcut_iterations: int
    num_classes: Optional[int] = None


def evaluation_maps(job: EvalJob) -> dict:
    """Ycrf, Yret, the Box / GrabCut baselines and the ground truth of one
    image (GrabCut is the slow part, so this runs in the worker pool)."""
    maps = {
        kind: read_label_png(label_path(job.out_dir, kind, job.stem))
        for kind in MAPS
        if osp.isfile(label_path(job.out_dir, kind, job.stem))
    }
    if 'Ycrf' not in maps:
        return dict(stem=job.stem, missing=True)
    hw = maps['Ycrf'].shape
    out = dict(
        stem=job.stem, missing=False, ycrf=maps['Ycrf'], yret=maps.get('Yret'))
    if job.gt_path is not None:
        gt = read_label_png(job.gt_path)
        check_label_map(gt, job.gt_path, job.num_classes, hw, job.img_path)
        out['gt'] = gt
        out['box'] = box_baseline(job.boxes, job.labels, hw)
        if job.grabcut:
            import mmcv
            image = mmcv.imread(job.img_path)
            if image is None:
                raise ValueError(f'cannot read image {job.img_path}')
            out['grabcut'] = grabcut_baseline(image, job.boxes, job.labels,
                                              job.grabcut_iterations)
    return out


def _ground_truth_path(dataset, info: dict, seg_subdir: str) -> Optional[str]:
    if info.get('seg_map_path'):
        return info['seg_map_path']
    root = getattr(dataset, 'data_root', None) or ''
    path = osp.join(root, seg_subdir, image_stem(info) + '.png')
    return path if osp.isfile(path) else None


def _report_left_out(errors: List[dict], no_gt: List[str],
                     images: int) -> None:
    """Log the images the scores leave out: ground truth that cannot be
    used (an error: the tool exits 3) and, when only some images have one,
    those without a ground-truth PNG."""
    from mmengine.logging import print_log
    if errors:
        shown = '; '.join(f'{e["image"]}: {e["error"]}' for e in errors[:5])
        print_log(
            f'scores: {len(errors)} of {images} image(s) LEFT OUT (listed '
            f'in metrics.json "errors"): {shown}',
            logger='current',
            level=logging.WARNING)
    if 0 < len(no_gt) < images:
        print_log(
            f'scores: {len(no_gt)} of {images} image(s) have no ground-truth '
            f'PNG and are not scored (metrics.json "no_ground_truth"): '
            f'{", ".join(no_gt[:10])}',
            logger='current',
            level=logging.WARNING)


def evaluate_label_files(dataset,
                         out_dir: str,
                         *,
                         grabcut: bool = True,
                         grabcut_iterations: int = 5,
                         seg_subdir: str = 'SegmentationClass',
                         workers: int = 1,
                         pool: Optional[WorkerPool] = None,
                         coco_ann_file: Optional[str] = None) -> dict:
    """Scores of the label files in ``out_dir`` (paper Tables 1-2).

    With ground-truth class maps: mIoU (per class too) of Ycrf, Yret, Box
    and GrabCut, the share of S and the accuracy of Ycrf on S, in percent.
    For COCO input (``coco_ann_file``): pseudo-mask AP (0-1, mmdet's
    names) of the RLE jsons against the json's real masks. ``units`` says
    so. GrabCut (the slow part) runs in ``pool`` or a pool
    of ``workers`` processes.
    """
    class_names = ('background', ) + tuple(dataset.metainfo['classes'])
    jobs = []
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        kept = [i for i in info['instances'] if not i.get('ignore_flag', 0)]
        jobs.append(
            EvalJob(
                stem=image_stem(info),
                img_path=info['img_path'],
                gt_path=_ground_truth_path(dataset, info, seg_subdir),
                out_dir=out_dir,
                boxes=np.array([i['bbox'] for i in kept],
                               dtype=np.float32).reshape(-1, 4),
                labels=np.array([i['bbox_label'] for i in kept],
                                dtype=np.int64),
                grabcut=grabcut,
                grabcut_iterations=grabcut_iterations,
                num_classes=len(class_names)))
    own = pool is None
    pool = pool or WorkerPool(workers)
    try:
        results = pool.map(evaluation_maps, jobs, name=lambda j: j.img_path)
    finally:
        if own:
            pool.close()
    methods = ('ycrf', 'yret', 'box', 'grabcut')
    semantic = {m: SemanticScores(class_names) for m in methods}
    agreement = AgreementScores()
    missing, errors, with_gt = [], [], 0
    for job, result in zip(jobs, results):
        if isinstance(result, Exception):
            errors.append(dict(image=job.stem, error=repr(result)))
            continue
        if result['missing']:
            missing.append(job.stem)
            continue
        gt = result.get('gt')
        if result['yret'] is not None:
            agreement.add(result['ycrf'], result['yret'], gt)
        if gt is None:
            continue
        with_gt += 1
        for method in methods:
            if result.get(method) is not None:
                semantic[method].add(result[method], gt)
    no_gt = [job.stem for job in jobs if job.gt_path is None]
    _report_left_out(errors, no_gt, len(jobs))
    scores = {m: semantic[m].results() for m in methods}
    metrics = dict(
        units={
            k: v
            for k, v in UNITS.items()
            if k != 'coco_ap' or coco_ann_file is not None
        },
        images=len(jobs),
        evaluated=with_gt,
        missing=missing,
        errors=errors,
        no_ground_truth=no_gt,
        miou={m: scores[m]['miou']
              for m in methods if scores[m]['images']},
        per_class={
            m: scores[m]['per_class']
            for m in methods if scores[m]['images']
        },
        **agreement.results())
    if coco_ann_file is not None:
        metrics['coco_ap'] = {}
        for kind in MAPS:
            path = osp.join(out_dir, f'instances_{kind.lower()}.json')
            if osp.isfile(path):
                with open(path) as f:
                    pseudo = json.load(f)
                metrics['coco_ap'][kind.lower()] = coco_mask_ap(
                    coco_ann_file, pseudo['annotations'],
                    [im['id'] for im in pseudo['images']])
    return metrics


def score_label_dir(
    label_dir: str,
    ids: Sequence[str],
    gt_dir: str,
    class_names: Sequence[str],
    boxes_by_id: Optional[Dict[str, Tuple[np.ndarray, np.ndarray]]] = None
) -> dict:
    """Scores of the single-map label files ``label_dir/<id>.png`` (MDH's
    proposal and pseudo masks) against ``gt_dir/<id>.png`` where it exists.

    Returns ``miou`` (percent; ignored pixels count as misses, as in mmseg's
    ``IoUMetric`` on the map as written), ``miou_labelled`` (only the pixels
    the map labels), ``ignored_share`` (percent of 255 pixels over all ids),
    ``images`` and ``evaluated``. With ``boxes_by_id`` ({id: (boxes,
    0-based labels)}) also ``box``: the Box baseline on the same ids.

    Raises:
        FileNotFoundError / ValueError naming the file: a missing or
        unreadable label map, a map whose size differs from its ground
        truth, a ground truth with values outside ``class_names``.
    """
    scores = {k: SemanticScores(class_names) for k in ('all', 'labelled')}
    box_scores = SemanticScores(class_names)
    ignored = total = 0
    for stem in ids:
        path = osp.join(label_dir, f'{stem}.png')
        pred = read_label_png(path)
        ignored += int((pred == 255).sum())
        total += pred.size
        gt_path = osp.join(gt_dir, f'{stem}.png')
        if not osp.isfile(gt_path):
            continue
        gt = read_label_png(gt_path)
        check_label_map(gt, gt_path, len(class_names))
        if gt.shape != pred.shape:
            raise ValueError(f'{path}: label map {pred.shape} does not '
                             f'match its ground truth {gt_path} {gt.shape}')
        scores['all'].add(pred, gt)
        scores['labelled'].add(pred, np.where(pred == 255, 255, gt))
        if boxes_by_id is not None:
            box_scores.add(box_baseline(*boxes_by_id[stem], gt.shape), gt)
    entry = dict(
        miou=scores['all'].results()['miou'],
        miou_labelled=scores['labelled'].results()['miou'],
        ignored_share=round(100.0 * ignored / total, 2) if total else None,
        images=len(ids),
        evaluated=scores['all'].images)
    if boxes_by_id is not None:
        entry['box'] = box_scores.results()['miou']
    return entry
