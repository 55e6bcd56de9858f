"""Share of BAP box bins that pool to an all-zero vector, on real boxes after
the stage-1 training augmentation.

Eq. (4) of the paper divides by the pooled weight sum(1 - A) over a box (or
an RoI bin); A is 1 outside the boxes rasterised at feature resolution
(eq. 3), so a box narrower than about one feature stride can pool nothing
but zeros. This tool feeds every training image of a box dataset through the
config's train pipeline (random scale, crop, flip) ``--passes`` times, gives
each crop a random feature map at ``--stride`` (features only matter through
A, which is < 1 almost surely inside the boxes), runs the config's
``BAPHead.pool`` (training grid) and counts:

- boxes whose bins are all zero vectors, boxes with at least one zero bin,
  and zero bins among all bins (images that fall back to GAP pooling, SPEC
  §1, cannot have any; their count is printed too).

The code measured is whatever ``bana_mm`` imports, so the same command with
another checkout first on ``PYTHONPATH`` measures that checkout::

    PYTHONPATH=. python tools/analysis/bap_zero_bins.py \\
        --data-root ../shared/data/coco128_voc20 [--passes 20] [--json OUT]

Images without a box left after the crop are re-drawn by the pipeline, as in
training. Always exits 0 once it ran (it measures, it does not judge).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
from typing import List, Optional

import numpy as np
import torch

DEFAULT_CONFIG = 'configs/bana/bap_vgg16_voc.py'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='stage-1 config (its train pipeline and head); a path or a '
        'name under configs/')
    parser.add_argument('--data-root', required=True)
    parser.add_argument('--split', default='ImageSets/Segmentation/train.txt')
    parser.add_argument(
        '--passes', type=int, default=20, help='augmented copies per image')
    parser.add_argument(
        '--stride', type=int, default=8, help='feature stride of the net')
    parser.add_argument('--dim', type=int, default=16, help='feature width')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', default=None, help='write the counts here')
    args = parser.parse_args(argv)
    if args.passes < 1 or args.stride < 1 or args.dim < 1:
        parser.error('--passes, --stride and --dim must be >= 1')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from mmdet.registry import DATASETS, MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import bana_mm.det  # noqa: F401  (registers the dataset and BAPHead)
    from bana_mm.utils.config_path import config_file
    init_default_scope('mmdet')
    cfg = Config.fromfile(config_file(args.config))
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.update(data_root=args.data_root, ann_file=args.split)
    crop = next((tuple(s['crop_size'])
                 for s in ds_cfg.pipeline if s['type'] == 'RandomCrop'), None)
    dataset = DATASETS.build(ds_cfg)
    head_cfg = copy.deepcopy(cfg.model.head)
    head_cfg.in_channels = args.dim
    head = MODELS.build(head_cfg)

    counts = dict(
        boxes=0,
        bins=0,
        zero_bins=0,
        boxes_all_zero=0,
        boxes_any_zero=0,
        images=0,
        gap_fallback_images=0,
        boxes_attention_pooled=0)
    for p in range(args.passes):
        np.random.seed(args.seed + p)
        random.seed(args.seed + p)
        for i in range(len(dataset)):
            sample = dataset[i]['data_samples']
            h, w = sample.img_shape[:2]
            # a batch of full crops pads every image to the crop size
            batch_hw = (max(h, crop[0]), max(w, crop[1])) if crop else (h, w)
            sample.set_metainfo(dict(batch_input_shape=batch_hw))
            gen = torch.Generator().manual_seed((args.seed * 1000 + p) *
                                                100003 + i)
            feat = torch.randn(
                args.dim,
                math.ceil(batch_hw[0] / args.stride),
                math.ceil(batch_hw[1] / args.stride),
                generator=gen)
            with torch.no_grad():
                result = head.pool(feat[None], [sample], head.grid_size)[0]
            zero = (result['box_feats'] == 0).all(dim=-1)  # (K, bins)
            counts['images'] += 1
            counts['gap_fallback_images'] += int(result['fallback'])
            if not result['fallback']:
                counts['boxes_attention_pooled'] += zero.shape[0]
            counts['boxes'] += zero.shape[0]
            counts['bins'] += zero.numel()
            counts['zero_bins'] += int(zero.sum())
            counts['boxes_all_zero'] += int(zero.all(dim=1).sum())
            counts['boxes_any_zero'] += int(zero.any(dim=1).sum())

    def pct(num: int, den: int) -> float:
        return round(100.0 * num / den, 2) if den else float('nan')

    summary = dict(
        counts,
        pct_boxes_all_zero=pct(counts['boxes_all_zero'], counts['boxes']),
        pct_boxes_any_zero=pct(counts['boxes_any_zero'], counts['boxes']),
        pct_zero_bins=pct(counts['zero_bins'], counts['bins']),
        pct_attention_pooled_boxes_all_zero=pct(
            counts['boxes_all_zero'], counts['boxes_attention_pooled']),
        config=args.config,
        data_root=args.data_root,
        split=args.split,
        passes=args.passes,
        stride=args.stride,
        roi_size=head.roi_size,
        seed=args.seed)
    print(f"{counts['boxes']} boxes ({counts['images']} augmented images, "
          f"{counts['gap_fallback_images']} pooled with the GAP fallback, "
          f"{counts['boxes_attention_pooled']} boxes pooled with attention), "
          f"{counts['bins']} bins of {head.roi_size}")
    print(f"all bins zero:       {counts['boxes_all_zero']:6d} boxes "
          f"({summary['pct_boxes_all_zero']} % of all boxes, "
          f"{summary['pct_attention_pooled_boxes_all_zero']} % of the "
          'attention-pooled ones)')
    print(f"at least one zero:   {counts['boxes_any_zero']:6d} boxes "
          f"({summary['pct_boxes_any_zero']} %)")
    print(f"zero bins:           {counts['zero_bins']:6d} bins  "
          f"({summary['pct_zero_bins']} %)")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=2)
    return summary


if __name__ == '__main__':
    main(sys.argv[1:])
    sys.exit(0)
