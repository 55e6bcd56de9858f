"""Which GrabCut settings suit a dataset? Scores the GrabCut baseline and
MDH's proposal masks (GrabCut ∩ box, docs/mdh.md) over a split for a grid
of window margins and fill-below shares, beside the Box baseline.

    python tools/analysis/grabcut_sweep.py DATA_ROOT \\
        [--split ImageSets/Segmentation/val.txt] [--margins 0.5 1.0] \\
        [--fill-below off 0 0.1 0.2] [--iterations 5] [--workers 2]

Pick the settings on images that are not scored later (the val split by
default: MDH's proposals are made for the W training ids), then pass them to
``tools/run_pipeline.py --method mdh --grabcut-margin M
--grabcut-fill-below S``. GrabCut runs once per box and margin; each
fill-below share is applied to those masks
(:func:`bana_mm.core.baselines.fill_if_kept_below`). mIoU in percent;
ignored pixels of the proposals count as misses. Exits 0 once it ran (it
measures, it does not judge).
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

FillBelow = Optional[float]


@dataclass
class SweepJob:
    """One image's inputs to :func:`sweep_image`."""
    stem: str
    img_path: str
    gt_path: str
    boxes: np.ndarray
    labels: np.ndarray
    margins: Tuple[float, ...]
    fill_below: Tuple[FillBelow, ...]
    iterations: int


def sweep_image(job: SweepJob) -> dict:
    """Ground truth, Box baseline, and per (margin, fill-below) the GrabCut
    baseline, the proposal mask and how many boxes were filled."""
    import mmcv

    from bana_mm.core.baselines import (box_baseline, fill_if_kept_below,
                                        grabcut_mask, paint_by_box_area)
    from bana_mm.core.mdh_proposals import proposal_mask
    from bana_mm.utils.label_io import read_label_png
    image = mmcv.imread(job.img_path)
    if image is None:
        raise ValueError(f'cannot read image {job.img_path}')
    hw = image.shape[:2]
    out = dict(
        gt=read_label_png(job.gt_path),
        box=box_baseline(job.boxes, job.labels, hw),
        maps={})
    for margin in job.margins:
        masks = [
            grabcut_mask(image, box, job.iterations, margin)
            for box in job.boxes
        ]
        for fill_below in job.fill_below:
            filled = [
                fill_if_kept_below(mask, box, fill_below)
                for mask, box in zip(masks, job.boxes)
            ]
            out['maps'][(margin, fill_below)] = dict(
                grabcut=paint_by_box_area(filled, job.boxes, job.labels, hw),
                proposal=proposal_mask(filled, job.boxes, job.labels, hw),
                filled=sum(not np.array_equal(a, b)
                           for a, b in zip(masks, filled)))
    return out


def sweep(data_root: str,
          split: str,
          margins: Sequence[float] = (0.5, 1.0),
          fill_below: Sequence[FillBelow] = (None, 0.0, 0.1, 0.2),
          iterations: int = 5,
          workers: int = 2) -> Dict[str, object]:
    """Scores of every (margin, fill-below) over the ids of ``split`` (a
    path, or relative to ``data_root``). Returns ``{"box": mIoU, "boxes": n,
    "images": n, "rows": [{"margin", "fill_below", "grabcut", "proposal",
    "ignored_share", "filled"}]}``."""
    from bana_mm.apis.common import VOCLayout
    from bana_mm.core.baselines import GrabCutOptions
    from bana_mm.evaluation.pseudo_label_metrics import SemanticScores
    from bana_mm.seg.mdh.label_writers import box_dataset, boxes_by_id
    from bana_mm.utils.worker_pool import WorkerPool
    for margin in margins:  # the options' own checks
        for share in fill_below:
            GrabCutOptions(iterations, margin, share)
    layout = VOCLayout.inspect(data_root)
    split_file = osp.abspath(
        split if osp.isfile(split) else osp.join(layout.root, split))
    classes = ('background', ) + tuple(layout.classes)
    boxes = boxes_by_id(box_dataset(layout.root, split_file, layout.classes))
    jobs = [
        SweepJob(stem, osp.join(layout.root, 'JPEGImages', f'{stem}.jpg'),
                 osp.join(layout.root, 'SegmentationClass', f'{stem}.png'), b,
                 lab, tuple(margins), tuple(fill_below), int(iterations))
        for stem, (b, lab) in boxes.items()
    ]
    results: List[dict] = []
    with WorkerPool(workers) as pool:
        for job in jobs:
            results += [r for _, r in pool.submit(sweep_image, job, job)]
        results += [r for _, r in pool.drain()]
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise RuntimeError(f'{len(failed)} image(s) failed: {failed[:3]}')
    box_scores = SemanticScores(classes)
    for result in results:
        box_scores.add(result['box'], result['gt'])
    rows = []
    for key in results[0]['maps'] if results else []:
        gc, prop = SemanticScores(classes), SemanticScores(classes)
        ignored = pixels = filled = 0
        for result in results:
            maps = result['maps'][key]
            gc.add(maps['grabcut'], result['gt'])
            prop.add(maps['proposal'], result['gt'])
            ignored += int((maps['proposal'] == 255).sum())
            pixels += maps['proposal'].size
            filled += maps['filled']
        rows.append(
            dict(
                margin=key[0],
                fill_below=key[1],
                grabcut=round(gc.results()['miou'], 2),
                proposal=round(prop.results()['miou'], 2),
                ignored_share=round(100.0 * ignored / max(pixels, 1), 2),
                filled=filled))
    return dict(
        box=round(box_scores.results()['miou'], 2) if results else None,
        boxes=sum(len(j.boxes) for j in jobs),
        images=len(jobs),
        rows=rows)


def parse_fill_below(value: str) -> FillBelow:
    """``off`` -> None, else a share in [0, 1)."""
    from bana_mm.utils.cli import share_or_off
    share = share_or_off(value)
    return None if share == 'off' else share


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('data_root', help='VOC-layout folder with masks')
    parser.add_argument(
        '--split',
        default='ImageSets/Segmentation/val.txt',
        help='ids to score (a path, or relative to DATA_ROOT)')
    parser.add_argument('--margins', type=float, nargs='+', default=[0.5, 1])
    parser.add_argument(
        '--fill-below',
        type=parse_fill_below,
        nargs='+',
        default=[None, 0.0, 0.1, 0.2],
        help='shares in [0, 1), or off')
    parser.add_argument('--iterations', type=int, default=5)
    parser.add_argument(
        '--workers',
        type=int,
        default=2,
        help='GrabCut processes (0: the main process)')
    args = parser.parse_args(argv)
    result = sweep(args.data_root, args.split, args.margins, args.fill_below,
                   args.iterations, args.workers)
    print(f'{result["images"]} images, {result["boxes"]} boxes; '
          f'Box baseline {result["box"]:.2f} mIoU %')
    print('| margin | fill below | GrabCut mIoU % | GrabCut ∩ box mIoU % '
          '| ignored % | boxes filled |')
    print('| --- | --- | --- | --- | --- | --- |')
    for row in result['rows']:
        share = 'off' if row['fill_below'] is None else row['fill_below']
        print(f'| {row["margin"]} | {share} | {row["grabcut"]:.2f} | '
              f'{row["proposal"]:.2f} | {row["ignored_share"]:.2f} | '
              f'{row["filled"]} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
