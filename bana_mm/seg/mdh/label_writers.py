"""Label files of the MDH job for the W ids: proposal masks (§3.1), pseudo
masks (eq. 3) and the overlay sheets.

Each writer skips ids whose PNG exists (a rerun resumes), writes PNGs
atomically, and works on this rank's shard of the ids
(``DefaultSampler(round_up=False)``), so it runs unchanged under a
distributed launcher. The maths is in :mod:`bana_mm.core.mdh_proposals`.
"""
from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...core.baselines import GrabCutOptions, grabcut_masks, paint_by_box_area
from ...core.mdh_proposals import (fill_ignored, proposal_mask,
                                   pseudo_mask_from_probs)
from ...utils.io import atomic_write_bytes, atomic_write_text, output_path
from ...utils.label_io import read_label_png, write_label_png
from ...utils.worker_pool import WorkerPool

#: {image id: ((N, 4) xyxy boxes, (N,) 0-based class indices)}
BoxesById = Dict[str, Tuple[np.ndarray, np.ndarray]]


def box_dataset(data_root: str, ann_file: str, classes: Sequence[str]):
    """Boxes of ``ann_file``'s ids, as AnnNet's priors see them:
    :class:`~bana_mm.seg.mdh.MDHVOCDataset` (VOC XML, else boxes derived from
    the masks) without a pipeline (``get_data_info`` only)."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS

    with DefaultScope.overwrite_default_scope('mmseg'):
        return DATASETS.build(
            dict(
                type='MDHVOCDataset',
                data_root=data_root.rstrip('/') + '/',
                ann_file=ann_file,
                metainfo=dict(classes=tuple(classes)),
                pipeline=[]))


def boxes_of(info: dict) -> Tuple[np.ndarray, np.ndarray]:
    """(N, 4) float32 boxes and (N,) int64 0-based labels of a data info
    (the dataset's labels are segmentation indices, background 0)."""
    return (np.asarray(info['gt_bboxes'], np.float32).reshape(-1, 4),
            np.asarray(info['gt_bboxes_labels'], np.int64).reshape(-1) - 1)


def boxes_by_id(dataset) -> BoxesById:
    """:func:`boxes_of` every id of ``dataset``."""
    infos = (dataset.get_data_info(i) for i in range(len(dataset)))
    return {info['img_id']: boxes_of(info) for info in infos}


def _shard(dataset) -> List[int]:
    from mmengine.dataset import DefaultSampler
    return list(DefaultSampler(dataset, shuffle=False, round_up=False))


def _progress(total: int):
    from mmengine.dist import is_main_process
    from mmengine.utils import ProgressBar
    return ProgressBar(total) if is_main_process() and total else None


def _close(bar) -> None:
    if bar is not None:
        bar.file.write('\n')


# --------------------------------------------------------------- proposals
@dataclass
class ProposalJob:
    """One W image's inputs to :func:`make_proposal`."""
    stem: str
    img_path: str
    boxes: np.ndarray
    labels: np.ndarray
    out_dir: str
    ycrf_path: Optional[str]
    grabcut: GrabCutOptions


def make_proposal(job: ProposalJob) -> str:
    """GrabCut once per box, then the GrabCut baseline map (BANA Table 1)
    and the proposal mask (§3.1), written as ``grabcut/<id>.png`` and
    ``masks/<id>.png`` (the proposal last: an id is done once it exists)."""
    import mmcv
    image = mmcv.imread(job.img_path)
    if image is None:
        raise ValueError(f'cannot read image {job.img_path}')
    hw = image.shape[:2]
    ycrf = None if job.ycrf_path is None else read_label_png(job.ycrf_path)
    if ycrf is not None and ycrf.shape != hw:
        raise ValueError(f'{job.ycrf_path}: Ycrf {ycrf.shape} does not match '
                         f'the image {job.img_path} {hw}')
    fgs = grabcut_masks(image, job.boxes, job.grabcut)
    write_label_png(
        output_path(osp.join(job.out_dir, 'grabcut'), job.stem, '.png'),
        paint_by_box_area(fgs, job.boxes, job.labels, hw))
    write_label_png(
        output_path(osp.join(job.out_dir, 'masks'), job.stem, '.png'),
        proposal_mask(fgs, job.boxes, job.labels, hw, ycrf))
    return job.stem


def write_proposals(dataset,
                    out_dir: str,
                    ycrf_dir: Optional[str] = None,
                    grabcut: GrabCutOptions = GrabCutOptions(),
                    workers: int = 0) -> Dict[str, int]:
    """Proposal masks and the GrabCut baseline of this rank's shard, in
    ``workers`` processes (0: inline). GrabCut is the slow part (~1 s per
    COCO image on one core).

    Raises:
        RuntimeError: after every other image is written, naming each image
            that failed (unreadable image, missing or mismatched Ycrf).
    """
    report = dict(written=0, skipped=0)
    jobs = []
    for idx in _shard(dataset):
        info = dataset.get_data_info(idx)
        stem = info['img_id']
        if osp.isfile(osp.join(out_dir, 'masks', f'{stem}.png')):
            report['skipped'] += 1
            continue
        boxes, labels = boxes_of(info)
        jobs.append(
            ProposalJob(stem, info['img_path'], boxes, labels, out_dir,
                        ycrf_dir and osp.join(ycrf_dir, f'{stem}.png'),
                        grabcut))
    bar = _progress(report['skipped'] + len(jobs))
    if bar is not None:
        for _ in range(report['skipped']):
            bar.update()
    failures = []

    def collect(finished) -> None:
        for job, result in finished:
            if isinstance(result, Exception):
                failures.append(f'{job.img_path}: {result}')
            else:
                report['written'] += 1
            if bar is not None:
                bar.update()

    with WorkerPool(workers) as pool:
        for job in jobs:
            collect(pool.submit(make_proposal, job, job, name=job.img_path))
        collect(pool.drain())
    _close(bar)
    if failures:
        raise RuntimeError(f'{len(failures)} proposal mask(s) failed (the '
                           'others are written; fix these and rerun):\n  ' +
                           '\n  '.join(failures))
    return report


# ------------------------------------------------------------ pseudo masks
def write_pseudo_masks(runner,
                       cfg,
                       weak_ids: Sequence[str],
                       out_dir: str,
                       tau: float = 0.9,
                       boxes: Optional[BoxesById] = None,
                       box_constraint: Optional[str] = 'drop',
                       fill_from: Optional[str] = None) -> Dict[str, int]:
    """Eq. 3 for every W id without a PNG in ``out_dir``: AnnNet's strong
    head (``model.test_step`` on the config's 5-channel test pipeline),
    softmax, argmax where the max > τ, else 255. ``boxes`` turns on the
    optional box constraint, ``'drop'`` or ``'restrict'``
    (:func:`~bana_mm.core.mdh_proposals.pseudo_mask_from_probs`).
    ``fill_from``: the folder of the masks AnnNet was trained on; each
    written mask is that mask with only its ignored pixels from eq. 3
    (:func:`~bana_mm.core.mdh_proposals.fill_ignored`).

    Raises:
        FileNotFoundError / ValueError: a training mask of ``fill_from``
            missing or of another size (named).
    """
    import copy

    import torch
    from mmengine.dist import get_rank
    from mmengine.runner import Runner

    todo = [
        i for i in weak_ids if not osp.isfile(osp.join(out_dir, f'{i}.png'))
    ]
    report = dict(written=0, skipped=len(weak_ids) - len(todo))
    if not todo:
        return report
    if fill_from is not None:
        missing = [
            osp.join(fill_from, f'{i}.png') for i in todo
            if not osp.isfile(osp.join(fill_from, f'{i}.png'))
        ]
        if missing:
            raise FileNotFoundError(f'{len(missing)} training mask(s) to fill '
                                    f'not found: {missing[:10]}')
    os.makedirs(out_dir, exist_ok=True)
    todo_file = osp.abspath(osp.join(out_dir, f'.todo_rank{get_rank()}.txt'))
    atomic_write_text(todo_file, '\n'.join(todo) + '\n')
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg.dataset.ann_file = todo_file
    loader_cfg.batch_size = 1
    loader_cfg.sampler = dict(
        type='DefaultSampler', shuffle=False, round_up=False)
    loader = Runner.build_dataloader(loader_cfg)
    model = getattr(runner.model, 'module', runner.model)
    model.eval()
    bar = _progress(len(loader))
    with torch.no_grad():
        for batch in loader:
            for sample in model.test_step(batch):
                stem = osp.splitext(osp.basename(sample.img_path))[0]
                probs = sample.seg_logits.data.float().softmax(dim=0)
                box, label = boxes[stem] if boxes is not None else (None, None)
                mask = pseudo_mask_from_probs(probs.cpu(), tau, box, label,
                                              box_constraint)
                if fill_from is not None:
                    mask = _filled(osp.join(fill_from, f'{stem}.png'), mask)
                write_label_png(output_path(out_dir, stem, '.png'), mask)
                report['written'] += 1
            if bar is not None:
                bar.update()
    _close(bar)
    os.unlink(todo_file)
    return report


def _filled(training_path: str, pseudo_mask: np.ndarray) -> np.ndarray:
    """:func:`~bana_mm.core.mdh_proposals.fill_ignored` with the training
    mask read from ``training_path`` (errors name the file)."""
    if not osp.isfile(training_path):
        raise FileNotFoundError(f'training mask not found: {training_path}')
    try:
        return fill_ignored(read_label_png(training_path), pseudo_mask)
    except ValueError as err:
        raise ValueError(f'{training_path}: {err}') from err


# ---------------------------------------------------------------- pictures
def write_sheets(dataset, classes: Sequence[str], stems: Sequence[str],
                 out_dir: str, label_dirs: Sequence[str]) -> List[str]:
    """:func:`~bana_mm.visualization.mdh_sheet.mdh_sheet_from_files` of
    ``stems`` (image + boxes, the priors, then ``label_dirs/<id>.png`` in
    order: proposal, pseudo mask, ground truth) as ``out_dir/<id>.jpg``."""
    import cv2

    from ...visualization.mdh_sheet import mdh_sheet_from_files
    infos = {
        dataset.get_data_info(i)['img_id']: dataset.get_data_info(i)
        for i in range(len(dataset))
    }
    written = []
    for stem in stems:
        info = infos[stem]
        path = output_path(out_dir, stem, '.jpg')
        sheet = mdh_sheet_from_files(
            info['img_path'], *boxes_of(info), classes,
            [osp.join(d, f'{stem}.png') for d in label_dirs])
        ok, encoded = cv2.imencode('.jpg', sheet[..., ::-1],
                                   [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            atomic_write_bytes(path, encoded.tobytes())
            written.append(path)
    return written
