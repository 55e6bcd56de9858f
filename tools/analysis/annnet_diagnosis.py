"""What limits MDH's pseudo masks: AnnNet's class identity or its
foreground/background?

Runs a trained AnnNet (``<work-dir>/round<k>/annnet``: its dumped config and
last checkpoint) over an MDH run's W ids (and F ids) with the config's test
pipeline (the boxes' priors included) and scores, against the ground truth,
label maps made from the same softmax probabilities:

- ``eq3``: the pseudo masks of the paper (argmax where max p > tau, else
  ignored), what the pipeline writes by default;
- ``eq3_restrict``: eq. 3 on the probabilities restricted to background +
  the classes of the boxes at the pixel, renormalised (the pipeline's
  ``--box-constraint restrict``);
- ``argmax``: the argmax with no threshold;
- ``argmax_box_classes``: the argmax over background and the classes of the
  boxes covering the pixel (what the class prior tells the network);
- ``foreground_box_class``: AnnNet's foreground probability 1 - p_0 above
  tau gives the class of the smallest box there (background where p_0 >
  tau, else ignored): AnnNet's foreground with the boxes' classes;
- ``box``: the Box baseline (every box filled with its class, smallest on
  top).

Ignored pixels count as misses (as the pipeline's ``miou``). mIoU in
percent. Usage::

    python tools/analysis/annnet_diagnosis.py WORK_DIR [--round 1] [--tau 0.9]

Exits 0 once it ran (it measures, it does not judge).
"""
from __future__ import annotations

import argparse
import copy
import glob
import os.path as osp
import sys
from typing import Dict, List, Optional

import numpy as np

VARIANTS = ('eq3', 'eq3_restrict', 'argmax', 'argmax_box_classes',
            'foreground_box_class', 'box')


def label_maps(probs, boxes: np.ndarray, labels: np.ndarray,
               tau: float) -> Dict[str, np.ndarray]:
    """The label maps (VARIANTS) of one image from (C, H, W) probabilities
    and its boxes (0-based ``labels``)."""
    import torch

    from bana_mm.core.mdh_proposals import (pseudo_mask_from_probs,
                                            restrict_to_box_classes)
    from bana_mm.core.priors import class_prior
    probs = torch.as_tensor(probs).float()
    hw = tuple(probs.shape[1:])
    restricted = restrict_to_box_classes(probs, boxes, labels)
    box_class = class_prior(boxes, np.asarray(labels) + 1, hw)
    foreground = (1.0 - probs[0]).numpy()
    fg_box = np.full(hw, 255, dtype=np.uint8)
    fg_box[(foreground > tau) & (box_class > 0)] = box_class[(foreground > tau)
                                                             & (box_class > 0)]
    fg_box[(1.0 - foreground) > tau] = 0
    return dict(
        eq3=pseudo_mask_from_probs(probs, tau),
        eq3_restrict=pseudo_mask_from_probs(restricted, tau),
        argmax=probs.argmax(0).numpy().astype(np.uint8),
        argmax_box_classes=restricted.argmax(0).numpy().astype(np.uint8),
        foreground_box_class=fg_box,
        box=box_class.astype(np.uint8))


def diagnose(work_dir: str, round_index: int, split: str,
             tau: float) -> Dict[str, Optional[float]]:
    """mIoU of every variant over the ids of ``splits/<split>.txt``."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner
    from mmengine.utils import ProgressBar
    from mmseg.apis import init_model
    from mmseg.utils import register_all_modules

    import bana_mm  # noqa: F401
    from bana_mm.evaluation.pseudo_label_metrics import SemanticScores
    from bana_mm.seg.mdh.label_writers import boxes_by_id
    from bana_mm.utils.label_io import read_label_png
    register_all_modules(init_default_scope=True)
    annnet = osp.join(work_dir, f'round{round_index}', 'annnet')
    configs = sorted(glob.glob(osp.join(annnet, '*.py')))
    checkpoints = sorted(glob.glob(osp.join(annnet, 'iter_*.pth')))
    if not configs or not checkpoints:
        raise FileNotFoundError(f'{annnet}: no dumped config / iter_*.pth')
    cfg = Config.fromfile(configs[0])
    model = init_model(cfg, checkpoints[-1], device='cpu')
    model.eval()
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg.dataset.ann_file = osp.join(work_dir, 'splits', f'{split}.txt')
    loader_cfg.batch_size = 1
    loader_cfg.sampler = dict(
        type='DefaultSampler', shuffle=False, round_up=False)
    loader = Runner.build_dataloader(loader_cfg)
    dataset = loader.dataset
    boxes = boxes_by_id(dataset)
    classes = dataset.metainfo['classes']
    scores = {name: SemanticScores(classes) for name in VARIANTS}
    gt_dir = osp.join(dataset.data_root, 'SegmentationClass')
    bar = ProgressBar(len(loader))
    with torch.no_grad():
        for batch in loader:
            for sample in model.test_step(batch):
                stem = osp.splitext(osp.basename(sample.img_path))[0]
                probs = sample.seg_logits.data.float().softmax(dim=0)
                gt = read_label_png(osp.join(gt_dir, f'{stem}.png'))
                for name, pred in label_maps(probs, *boxes[stem], tau).items():
                    scores[name].add(pred, gt)
            bar.update()
    sys.stdout.write('\n')
    return {name: s.results()['miou'] for name, s in scores.items()}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'work_dir',
        help='an MDH run (tools/run_pipeline.py '
        '--method mdh --work-dir)')
    parser.add_argument('--round', type=int, default=1)
    parser.add_argument('--tau', type=float, default=0.9)
    parser.add_argument(
        '--splits',
        nargs='+',
        default=['weak', 'full'],
        help='splits/<name>.txt of the run (default: W, F)')
    args = parser.parse_args(argv)
    rows = {
        split: diagnose(args.work_dir, args.round, split, args.tau)
        for split in args.splits
    }
    print('| label map | ' + ' | '.join(f'{s} mIoU %' for s in rows) + ' |')
    print('| --- |' + ' --- |' * len(rows))
    for name in VARIANTS:
        print(f'| {name} | ' + ' | '.join(f'{rows[s][name]:.2f}'
                                          for s in rows) + ' |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
