"""Stage 2 over a dataset with a stage-1 model: pseudo-label files, their
scores and pictures (paper §3.2, SPEC §2). Shared by
:class:`~bana_mm.det.PseudoLabelHook`, ``tools/gen_pseudo_labels.py`` and
the one-command pipeline (through :mod:`bana_mm.apis.stage2`).

Work split (so that a GPU never waits for DenseCRF): the main process loads
an image, runs the network and computes the unaries
(:func:`~bana_mm.core.pseudo_labels.prepare_pseudo_labels`); a
:class:`~bana_mm.utils.worker_pool.WorkerPool` runs DenseCRF, Yret and the
file writes (:func:`~bana_mm.core.pseudo_labels.finish_pseudo_labels`).
Under a distributed launcher each rank takes its own shard of the images
(``DefaultSampler(round_up=False)``: every image exactly once).

Output folder::

    OUT/Ycrf/<id>.png, OUT/Yret/<id>.png   palette PNGs (0 bg, c, 255 ignore)
    OUT/vis/<id>.jpg                       overlay sheets of the first images
    OUT/instances_ycrf.json, OUT/instances_yret.json   (COCO input) RLE masks
    OUT/run.json                           what this run did, timings
    OUT/metrics.json                       scores, when ground truth exists
    OUT/fingerprint.json                   what produced the labels
    OUT/.bana_mm.lock                      one writer at a time

Every file is written atomically. Rank 0 holds the out-dir's lock
(:func:`~bana_mm.utils.io.folder_lock`) for the whole run; before any label
is computed :mod:`~bana_mm.det.pseudo_label_outdir` checks the out-dir: a
rerun of the same run skips the images whose labels are still valid (same
inputs, not empty), a different run stops with :class:`StaleLabelsError`
unless ``overwrite`` (which removes what stage 2 wrote, nothing else).
"""
from __future__ import annotations

import copy
import json
import logging
import os.path as osp
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.downscale import OriginalSize, labels_at_size
from ..core.finite import check_finite
from ..core.pseudo_labels import (PreparedImage, PseudoLabelConfig,
                                  finish_pseudo_labels, prepare_pseudo_labels)
from ..evaluation import evaluate_label_files
from ..utils.io import atomic_open, atomic_write_text, folder_lock
from ..utils.label_io import write_label_png
from ..utils.label_layout import image_stem, is_done, label_path
from ..utils.worker_pool import WorkerPool
from .coco_export import write_coco_instances
from .pseudo_label_data import (classifier_for, dataset_fingerprint,
                                file_sha256, image_inputs, is_coco_dataset,
                                network_features, state_dict_sha256)
from .pseudo_label_outdir import (  # noqa: F401  (re-exported)
    StaleLabelsError, prepare_out_dir)

#: Exit code of ``tools/gen_pseudo_labels.py`` when any image failed.
EXIT_IMAGES_FAILED = 3


@dataclass
class Stage2Options:
    """How to run stage 2 over a dataset.

    Attributes:
        workers: DenseCRF / retrieval processes; 0 runs them inline.
        num_vis: overlay sheets for the first ``num_vis`` images.
        evaluate: write ``metrics.json`` when ground truth exists.
        grabcut: include the GrabCut baseline (5 iterations) in the scores.
        grabcut_iterations: GrabCut iterations per box.
        seg_subdir: ground-truth class maps of a VOC-layout ``data_root``.
        labels: the per-image options of SPEC §2.
    """
    workers: int = 1
    num_vis: int = 4
    evaluate: bool = True
    grabcut: bool = True
    grabcut_iterations: int = 5
    seg_subdir: str = 'SegmentationClass'
    labels: PseudoLabelConfig = field(default_factory=PseudoLabelConfig)


@dataclass
class FinishJob:
    """What a worker needs to finish and write one image."""
    prep: PreparedImage
    out_dir: str
    stem: str
    vis: bool
    class_names: Tuple[str, ...]
    original: Optional[OriginalSize] = None


def finish_and_write(job: FinishJob) -> dict:
    """DenseCRF + Yret of one image, its PNGs (and sheet); timings.

    A downscaled image (``job.original``) gets its label files at its own
    size (:func:`~bana_mm.core.downscale.labels_at_size`); its sheet stays
    at the size it was labelled at."""
    result = finish_pseudo_labels(job.prep)
    t0 = time.perf_counter()
    ycrf, yret = result.ycrf, result.yret
    if job.original is not None:
        ycrf = labels_at_size(ycrf, job.original)
        if yret is not None:
            yret = labels_at_size(yret, job.original)
    if yret is not None:
        write_label_png(label_path(job.out_dir, 'Yret', job.stem), yret)
    # Ycrf last: an image counts as done once its Ycrf exists.
    write_label_png(label_path(job.out_dir, 'Ycrf', job.stem), ycrf)
    write_seconds = time.perf_counter() - t0
    if job.vis:
        import cv2

        from ..visualization import pseudo_label_sheet
        prep = job.prep
        sheet = pseudo_label_sheet(prep.image, prep.boxes.numpy(),
                                   prep.labels.numpy(), job.class_names,
                                   result.u0, result.class_ids,
                                   result.unaries[1:], result.ycrf,
                                   result.yret)
        ok, encoded = cv2.imencode('.jpg', sheet[..., ::-1],
                                   [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            with atomic_open(osp.join(job.out_dir, 'vis',
                                      f'{job.stem}.jpg')) as f:
                f.write(encoded.tobytes())
    return dict(
        stem=job.stem,
        unary=result.unary_seconds,
        crf=result.crf_seconds,
        retrieval=result.retrieval_seconds,
        write=write_seconds,
        restored_boxes=result.restored_boxes)


def _progress(total: int):
    from mmengine.dist import is_main_process
    from mmengine.utils import ProgressBar
    return ProgressBar(total) if is_main_process() and total else None


def _log(message: str, level: int = logging.INFO) -> None:
    from mmengine.logging import print_log
    print_log(message, logger='current', level=level)


def generate_label_files(
        model,
        dataset,
        out_dir: str,
        options: Optional[Stage2Options] = None,
        trained_classes: Optional[Sequence[str]] = None) -> dict:
    """Write Ycrf / Yret for this rank's shard of ``dataset``.

    Returns this rank's report: ``written``, ``skipped`` (finished by an
    earlier run), ``failed`` ({image, error}) and per-image timings.
    """
    from mmengine.dataset import DefaultSampler

    options = options or Stage2Options()
    data_classes = tuple(dataset.metainfo['classes'])
    weights, agnostic = classifier_for(model, data_classes, trained_classes)
    label_cfg = copy.deepcopy(options.labels)
    label_cfg.agnostic_classes = tuple(
        sorted(set(label_cfg.agnostic_classes) | set(agnostic)))
    if agnostic:
        _log(f'stage 2: class-agnostic unaries (1 - u0) for '
             f'{[data_classes[a] for a in agnostic]}: not in the classifier')
    with_yret = label_cfg.compute_yret
    indices = list(DefaultSampler(dataset, shuffle=False, round_up=False))
    report: Dict[str, list] = dict(
        written=[],
        skipped=[],
        failed=[],
        network=[],
        unary=[],
        crf=[],
        retrieval=[],
        write=[],
        downscaled=[],
        restored=[])
    bar = _progress(len(indices))
    model.eval()
    start = time.perf_counter()

    def collect(finished) -> None:
        for stem, result in finished:
            if isinstance(result, Exception):
                report['failed'].append(dict(image=stem, error=repr(result)))
                _log(f'stage 2: {stem} failed: {result!r}', logging.WARNING)
                if disk_full(result) and not report['stopped']:
                    report['stopped'] = f'{result} (while writing {stem})'
                    _log(
                        f'stage 2: STOPPING, the disk is full: '
                        f'{report["stopped"]}', logging.ERROR)
            else:
                report['written'].append(stem)
                for key in ('unary', 'crf', 'retrieval', 'write'):
                    report[key].append(result[key])
                if result['restored_boxes']:
                    report['restored'].append(
                        dict(image=stem, boxes=result['restored_boxes']))
            if bar is not None:
                bar.update()

    report['stopped'] = None
    with WorkerPool(options.workers) as executor:
        for idx in indices:
            if report['stopped']:  # no space: every next write would fail
                break
            info = dataset.get_data_info(idx)
            stem = image_stem(info)
            if is_done(out_dir, stem, with_yret):
                report['skipped'].append(stem)
                if bar is not None:
                    bar.update()
                continue
            try:
                t0 = time.perf_counter()
                item = dataset[idx]
                (feat, input_hw, image, boxes, labels,
                 original) = network_features(model, item,
                                              label_cfg.max_pixels)
                report['network'].append(time.perf_counter() - t0)
                if original is not None:
                    _note_downscaled(report, stem, original, image.shape[:2],
                                     label_cfg.max_pixels)
                prep = prepare_pseudo_labels(image, feat, weights, boxes,
                                             labels, input_hw, label_cfg)
            except Exception as err:  # unreadable image, bad boxes, ...
                collect([(f'{stem} ({info["img_path"]})', err)])
                continue
            job = FinishJob(
                prep=prep,
                out_dir=out_dir,
                stem=stem,
                vis=idx < options.num_vis,
                class_names=data_classes,
                original=original)
            collect(executor.submit(finish_and_write, job, stem))
        collect(executor.drain())
    if bar is not None:
        bar.file.write('\n')
    report['not_attempted'] = len(indices) - sum(
        len(report[k]) for k in ('written', 'skipped', 'failed'))
    report['seconds'] = time.perf_counter() - start
    return report


def _note_downscaled(report: dict, stem: str, original: OriginalSize,
                     labelled_hw: Tuple[int, int], max_pixels: int) -> None:
    """Record (and log the first of) the images labelled downscaled."""
    (H, W), (h, w) = original.image_hw, labelled_hw
    report['downscaled'].append(dict(image=stem, size=[H, W], at=[h, w]))
    if len(report['downscaled']) == 1:
        _log(
            f'stage 2: {stem} ({W}x{H}, {H * W} pixels) is above max_pixels '
            f'{max_pixels}: labelled at {w}x{h}, its labels upsampled to '
            f'{W}x{H} (the others are listed in run.json "downscaled")',
            logging.WARNING)


def disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or the quota) is full."""
    import errno
    full = (errno.ENOSPC, errno.EDQUOT)
    return isinstance(err, OSError) and err.errno in full


def _mean(values: Sequence[float]) -> Optional[float]:
    return round(float(np.mean(values)), 4) if len(values) else None


def merge_reports(reports: Sequence[dict], workers: int) -> dict:
    """One ``run.json`` from the reports of all ranks."""
    merged = {
        key: [v for r in reports for v in r[key]]
        for key in ('written', 'skipped', 'failed', 'downscaled', 'restored')
    }
    timings = {
        key: [v for r in reports for v in r[key]]
        for key in ('network', 'unary', 'crf', 'retrieval', 'write')
    }
    seconds = max(r['seconds'] for r in reports)
    written = len(merged['written'])
    not_attempted = sum(r['not_attempted'] for r in reports)
    return dict(
        images=written + len(merged['skipped']) + len(merged['failed']) +
        not_attempted,
        written=written,
        skipped=len(merged['skipped']),
        failed=merged['failed'],
        downscaled=merged['downscaled'],
        restored=merged['restored'],
        stopped=next((r['stopped'] for r in reports if r['stopped']), None),
        not_attempted=not_attempted,
        workers=workers,
        world_size=len(reports),
        seconds=round(seconds, 2),
        seconds_per_image=round(seconds / written, 4) if written else None,
        mean_seconds={
            k: _mean(v)
            for k, v in timings.items()
        },
        per_rank=[
            dict(written=r['written'], skipped=r['skipped']) for r in reports
        ])


def fingerprint(model,
                dataset,
                options: Stage2Options,
                trained_classes: Optional[Sequence[str]] = None,
                checkpoint: Optional[str] = None) -> dict:
    """What produces the labels: the checkpoint's sha256 (else the in-memory
    model's state-dict sha256), the per-image options, the class names and
    the dataset (:func:`dataset_fingerprint`)."""
    model_id = (
        dict(
            checkpoint=osp.abspath(checkpoint), sha256=file_sha256(checkpoint))
        if checkpoint else dict(state_dict_sha256=state_dict_sha256(model)))
    record = dict(
        model=model_id,
        labels=_options_record(options)['labels'],
        trained_classes=(list(trained_classes)
                         if trained_classes is not None else None),
        dataset=dataset_fingerprint(dataset))
    return json.loads(json.dumps(record))


def out_dir_folders(out_dir: str, options: Stage2Options) -> list:
    """The folders this run writes to (checked to be writable first)."""
    folders = [out_dir, osp.join(out_dir, 'Ycrf')]
    if options.labels.compute_yret:
        folders.append(osp.join(out_dir, 'Yret'))
    if options.num_vis > 0:
        folders.append(osp.join(out_dir, 'vis'))
    return folders


def run_stage2(model,
               dataset,
               out_dir: str,
               options: Optional[Stage2Options] = None,
               trained_classes: Optional[Sequence[str]] = None,
               checkpoint: Optional[str] = None,
               overwrite: bool = False) -> dict:
    """Check the out-dir (:func:`prepare_out_dir`, rank 0, the others
    wait), generate (sharded over ranks), then on rank 0 write the COCO
    jsons, ``metrics.json`` and ``run.json``. Returns ``run.json``'s content
    with ``metrics`` added (on every rank).

    ``checkpoint`` is the file the model was loaded from (its sha256 goes in
    ``fingerprint.json``; without it the state dict is hashed).
    ``overwrite`` deletes an earlier run's outputs first. A model with NaN
    or inf weights is refused before anything is written.
    """
    from mmengine.dist import (broadcast_object_list, get_world_size,
                               is_main_process)
    options = options or Stage2Options()
    check_finite(
        model.state_dict(), 'stage 2 refuses the weights of '
        f'{checkpoint or "the model"} (a diverged stage-1 run?)')
    with ExitStack() as lock:
        error, redo = [None], {}
        if is_main_process():
            try:
                lock.enter_context(folder_lock(out_dir, 'stage-2 run'))
                redo = prepare_out_dir(
                    out_dir,
                    fingerprint(model, dataset, options, trained_classes,
                                checkpoint), image_inputs(dataset),
                    out_dir_folders(out_dir, options), overwrite)
            except Exception as err:
                error = [err]
        if get_world_size() > 1:
            broadcast_object_list(error, src=0)
        if error[0] is not None:
            raise error[0]
        report = generate_label_files(model, dataset, out_dir, options,
                                      trained_classes)
        return _write_records(report, dataset, out_dir, options, redo)


def _write_records(report: dict, dataset, out_dir: str, options: Stage2Options,
                   redo: Dict[str, str]) -> dict:
    """Gather the ranks' reports; on rank 0 write the COCO jsons,
    ``metrics.json`` and ``run.json``; return ``run.json``'s content with
    ``metrics`` (every rank)."""
    from mmengine.dist import (all_gather_object, barrier,
                               broadcast_object_list, get_world_size,
                               is_main_process)
    reports = all_gather_object(report) if get_world_size() > 1 else [report]
    run = merge_reports(reports, options.workers)
    run['redone'] = redo
    summary = [None]
    if is_main_process() and run['stopped']:  # disk full: run.json only
        _write_run_json(run, out_dir, options)
        summary = [run]
    elif is_main_process():
        if is_coco_dataset(dataset):
            run['coco_json'] = write_coco_instances(dataset, out_dir)
        if options.evaluate:
            t0 = time.perf_counter()
            run['metrics'] = evaluate_label_files(
                dataset,
                out_dir,
                grabcut=options.grabcut,
                grabcut_iterations=options.grabcut_iterations,
                seg_subdir=options.seg_subdir,
                workers=options.workers,
                coco_ann_file=(dataset.ann_file
                               if is_coco_dataset(dataset) else None))
            run['evaluation_seconds'] = round(time.perf_counter() - t0, 2)
            atomic_write_text(
                osp.join(out_dir, 'metrics.json'),
                json.dumps(run['metrics'], indent=2) + '\n')
        _write_run_json(run, out_dir, options)
        summary = [run]
    if get_world_size() > 1:
        broadcast_object_list(summary, src=0)
        barrier()
    return summary[0]


def _write_run_json(run: dict, out_dir: str, options: Stage2Options) -> None:
    """``OUT/run.json``; on a full disk an error naming it is logged (the
    run's outcome is in the log and the exit code)."""
    record = {k: v for k, v in run.items() if k != 'metrics'}
    record['options'] = _options_record(options)
    path = osp.join(out_dir, 'run.json')
    try:
        atomic_write_text(path, json.dumps(record, indent=2) + '\n')
    except OSError as err:
        if not disk_full(err):
            raise
        _log(f'stage 2: cannot write {path}: {err}', logging.ERROR)


def _options_record(options: Stage2Options) -> dict:
    record = asdict(options)
    record['labels'] = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in record['labels'].items()
    }
    return record


def incomplete(run: dict) -> List[str]:
    """Why a finished run did not do all it says (exit code 3): images
    that failed, images left out of the scores (their ground truth is
    unreadable, of another size or has values outside the classes)."""
    problems = []
    if run.get('stopped'):
        problems.append(f'stopped, {run["not_attempted"]} of '
                        f'{run["images"]} images not attempted: '
                        f'{run["stopped"]}')
    if run['failed']:
        problems.append(
            f'{len(run["failed"])} of {run["images"]} images failed')
    left_out = (run.get('metrics') or {}).get('errors') or []
    if left_out:
        problems.append(f'{len(left_out)} of {run["images"]} images left '
                        'out of the scores')
    return problems


def describe(run: dict, out_dir: str) -> str:
    """A few lines for the log: counts, speed, scores, where things are."""
    lines = [
        f'pseudo labels in {out_dir}: {run["written"]} written, '
        f'{run["skipped"]} already there, {len(run["failed"])} failed'
    ]
    if run.get('seconds_per_image'):
        t = run['mean_seconds']
        lines.append(
            f'  {run["seconds_per_image"]:.2f} s/image wall '
            f'(network {t["network"]}, unaries {t["unary"]}, DenseCRF '
            f'{t["crf"]}, retrieval {t["retrieval"]} s; '
            f'{run["workers"]} CRF workers, {run["world_size"]} ranks)')
    metrics = run.get('metrics') or {}
    if metrics.get('miou'):
        lines.append('  mIoU (%) ' + ', '.join(
            f'{k} {v:.2f}'
            for k, v in metrics['miou'].items() if v is not None))
    if metrics.get('s_share') is not None:
        acc = metrics.get('s_accuracy')
        lines.append(f'  S share {metrics["s_share"]:.2f}%, Ycrf accuracy '
                     'on S ' + ('n/a' if acc is None else f'{acc:.2f}%'))
    for kind, ap in (metrics.get('coco_ap') or {}).items():
        lines.append(f'  {kind} mask AP (0-1, as mmdet) ' +
                     ', '.join(f'{k} {v}' for k, v in ap.items()))
    if run.get('downscaled'):
        lines.append(f'  {len(run["downscaled"])} image(s) above max_pixels '
                     'labelled downscaled, labels written at their own size '
                     f'(listed in {osp.join(out_dir, "run.json")})')
    if run.get('restored'):
        boxes = sum(item['boxes'] for item in run['restored'])
        lines.append(f'  {boxes} box(es) in {len(run["restored"])} image(s) '
                     'given back the class DenseCRF erased '
                     '(restore_erased_boxes; listed in run.json "restored")')
    if osp.isdir(osp.join(out_dir, 'vis')):
        lines.append(f'  pictures: {osp.join(out_dir, "vis")}')
    if run.get('stopped'):
        lines.append(f'  STOPPED: {run["stopped"]}; {run["not_attempted"]} '
                     'images not attempted (rerun with space: finished '
                     'images are kept)')
    if run['failed']:
        lines.append(f'  {len(run["failed"])} of {run["images"]} images '
                     f'FAILED (listed in {osp.join(out_dir, "run.json")})')
    left_out = metrics.get('errors') or []
    if left_out:
        lines.append(f'  {len(left_out)} of {run["images"]} images LEFT OUT '
                     'of the scores, their ground truth cannot be used '
                     f'(listed in {osp.join(out_dir, "metrics.json")})')
    return '\n'.join(lines)
