"""Time stage-2 pseudo-label generation (``generate_pseudo_labels``) per image.

Random inputs shaped like PASCAL VOC through the VGG-16 LargeFOV backbone: a
333 x 500 RGB image (``--image noise``: i.i.d. random pixels; ``smooth``:
smooth random colours, closer to a photo), 1024-d non-negative features at
output stride 8 (42 x 63), a 21 x 1024 classifier and a few boxes of two
classes. Feature extraction is not timed. For every ``upsample`` mode the
script prints mean ± std over the timed repetitions of the three parts that
``generate_pseudo_labels`` reports: unaries (u0, u_c, CRF input), DenseCRF
(10 mean-field iterations, pydensecrf, single-threaded) and retrieval (Yret).
Modes are interleaved per repetition so machine load hits all alike
(``bana_mm.utils.benchmark.interleaved``; the parts are the generator's own
timings, the total is the ``torch.utils.benchmark`` measurement).

    cd /work/main && PYTHONPATH=. .venv/bin/python \
        tools/benchmarks/pseudo_label_speed.py [--repeats 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics

import cv2
import numpy as np
import torch

from bana_mm.core.pseudo_labels import (UPSAMPLE_MODES, PseudoLabelConfig,
                                        generate_pseudo_labels)
from bana_mm.utils.benchmark import interleaved


def random_inputs(seed: int,
                  height: int,
                  width: int,
                  dim: int,
                  stride: int,
                  num_boxes: int,
                  image_kind: str = 'noise'):
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    if image_kind == 'noise':  # i.i.d. pixels: worst case for the lattice
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:  # smooth random colours, closer to a natural image
        small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3))
        image = cv2.resize(
            small.astype(np.uint8), (width, height),
            interpolation=cv2.INTER_CUBIC)
    h, w = -(-height // stride), -(-width // stride)
    feat = torch.rand(dim, h, w, generator=gen)
    weights = torch.randn(21, dim, generator=gen) * 0.01
    boxes = []
    for _ in range(num_boxes):
        x1, y1 = rng.uniform(0, width * 0.6), rng.uniform(0, height * 0.6)
        bw, bh = rng.uniform(40, width - x1), rng.uniform(40, height - y1)
        boxes.append([x1, y1, min(x1 + bw, width), min(y1 + bh, height)])
    labels = [(4, 11)[i % 2] for i in range(num_boxes)]  # two classes
    return image, feat, weights, np.array(boxes, np.float32), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--height', type=int, default=333)
    parser.add_argument('--width', type=int, default=500)
    parser.add_argument('--dim', type=int, default=1024)
    parser.add_argument('--stride', type=int, default=8)
    parser.add_argument('--boxes', type=int, default=3)
    parser.add_argument(
        '--image',
        default='noise',
        choices=['noise', 'smooth'],
        help='i.i.d. random pixels or smooth random colours')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch intra-op threads (default: torch default)')
    parser.add_argument(
        '--modes',
        nargs='+',
        default=['maps', 'features'],
        choices=UPSAMPLE_MODES)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    inputs = random_inputs(0, args.height, args.width, args.dim, args.stride,
                           args.boxes, args.image)
    image, feat, weights, boxes, labels = inputs
    print(f'{args.image} image {args.height}x{args.width}, '
          f'features {tuple(feat.shape)}, {len(boxes)} boxes of classes '
          f'{sorted(set(labels))}, torch threads {torch.get_num_threads()}')
    cfgs = {m: PseudoLabelConfig(upsample=m) for m in args.modes}
    parts = {m: dict(unary=[], crf=[], retrieval=[]) for m in args.modes}

    def run(mode: str) -> None:
        out = generate_pseudo_labels(
            image, feat, weights, boxes, labels, cfg=cfgs[mode])
        parts[mode]['unary'].append(out.unary_seconds)
        parts[mode]['crf'].append(out.crf_seconds)
        parts[mode]['retrieval'].append(out.retrieval_seconds)

    totals = interleaved({m: (lambda m=m: run(m))
                          for m in args.modes}, args.repeats, args.warmup,
                         'pseudo labels')
    times = {
        m: {
            k: v[args.warmup:]
            for k, v in parts[m].items()
        }
        for m in args.modes
    }
    for m in args.modes:
        times[m]['total'] = totals[m].times

    def fmt(values):
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f'{statistics.mean(values):7.3f} ± {sd:5.3f}'

    print(f'seconds per image, mean ± std over {args.repeats} repeats')
    print(f'{"upsample":>9} | {"unaries":>15} | {"DenseCRF":>15} | '
          f'{"retrieval":>15} | {"total":>15}')
    for mode in args.modes:
        t = times[mode]
        print(f'{mode:>9} | {fmt(t["unary"])} | {fmt(t["crf"])} | '
              f'{fmt(t["retrieval"])} | {fmt(t["total"])}')


if __name__ == '__main__':
    main()
