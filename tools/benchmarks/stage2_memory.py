"""Time and peak memory of stage 2 per image size (issue 9 item 3).

For each image size (VOC 500x375, COCO 640x480, 2048x1024, 4000x3000) and
each ``upsample`` mode, one fresh process per step measures the wall time
and the peak resident memory above what the process held before the step
(Linux ``VmHWM`` after a ``clear_refs`` reset, minus the resident size
after the inputs were built):

* ``unaries``   -- :func:`prepare_pseudo_labels` from 1024-channel stride-8
  features: background query, u0 with its threshold, CAMs, CRF input;
* ``retrieval`` -- prototypes and Yret (eqs. 8-9) from the same features
  (the feature norms come from the unaries step, as in the pipeline);
* ``densecrf``  -- pydensecrf on the CRF input (10 iterations);
* ``backbone``  -- (``--backbone``) the full-width VGG-16 LargeFOV forward
  that produces the features, for reference.

Features are random (the cost does not depend on their values); three
boxes of two classes cover about a third of the image.

    python tools/benchmarks/stage2_memory.py
        [--sizes voc coco 2048x1024 4000x3000] [--modes features maps]
        [--steps unaries retrieval densecrf] [--backbone]
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import resource
import subprocess
import sys
import time

SIZES = {
    'voc': (375, 500),
    'coco': (480, 640),
    '2048x1024': (1024, 2048),
    '4000x3000': (3000, 4000)
}
STEPS = ('unaries', 'retrieval', 'densecrf')


def _rss_mib() -> float:
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _reset_peak() -> None:
    """Reset the process's peak resident size (Linux ``clear_refs`` 5)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def _peak_mib() -> float:
    """Peak resident size since the last :func:`_reset_peak` (VmHWM)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _inputs(H: int, W: int):
    import math

    import numpy as np
    import torch
    torch.manual_seed(0)
    h, w = math.ceil(H / 8), math.ceil(W / 8)
    feat = torch.randn(1024, h, w).relu_()
    weights = torch.randn(21, 1024) * 0.05
    boxes = [[0.1 * W, 0.2 * H, 0.45 * W, 0.8 * H],
             [0.4 * W, 0.1 * H, 0.7 * W, 0.5 * H],
             [0.6 * W, 0.5 * H, 0.95 * W, 0.95 * H]]
    labels = [4, 14, 4]
    image = np.random.default_rng(0).integers(
        0, 256, (H, W, 3), dtype=np.uint8)
    return image, feat, weights, boxes, labels


def measure(size: str, mode: str, step: str) -> dict:
    """Run one step in this process; return seconds and peak MiB above the
    resident size before the step."""
    import numpy as np
    import torch

    from bana_mm.core.baselines import box_baseline
    from bana_mm.core.crf import dense_crf
    from bana_mm.core.pseudo_labels import (PseudoLabelConfig,
                                            prepare_pseudo_labels)
    from bana_mm.core.resample import BilinearResampler
    from bana_mm.core.retrieval import retrieval_maps
    torch.set_num_threads(2)
    H, W = SIZES[size]
    image, feat, weights, boxes, labels = _inputs(H, W)
    cfg = PseudoLabelConfig(upsample=mode)
    if step == 'densecrf':
        probs = prepare_pseudo_labels(
            image, feat, weights, boxes, labels, cfg=cfg).probs.numpy()
    elif step == 'retrieval':
        ycrf = box_baseline(np.asarray(boxes, np.float32), labels, (H, W))
        resampler = BilinearResampler(feat.shape[1:], (H, W), (H, W),
                                      cfg.align_corners)
        norms = (
            resampler.feature_norms(feat)  # from unaries
            if mode == 'features' else None)
    elif step == 'backbone':
        from mmengine.registry import MODELS

        import bana_mm  # noqa: F401
        model = MODELS.build(dict(type='VGG16LargeFOV')).eval()
        x = torch.randn(1, 3, H, W)
    _reset_peak()
    before = _rss_mib()
    t0 = time.perf_counter()
    with torch.no_grad():
        if step == 'unaries':
            prepare_pseudo_labels(image, feat, weights, boxes, labels, cfg=cfg)
        elif step == 'retrieval':
            retrieval_maps(
                feat,
                ycrf,
                weights,
                boxes,
                labels,
                upsample=mode,
                resampler=resampler,
                norms=norms)
        elif step == 'densecrf':
            dense_crf(image, probs)
        elif step == 'backbone':
            model(x)
    seconds = time.perf_counter() - t0
    return dict(
        size=size,
        mode=mode,
        step=step,
        seconds=round(seconds, 2),
        peak_mib=round(max(0.0,
                           _peak_mib() - before), 1))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    parser.add_argument(
        '--modes',
        nargs='+',
        default=['features', 'maps'],
        choices=['features', 'maps'])
    parser.add_argument(
        '--steps',
        nargs='+',
        default=list(STEPS),
        choices=list(STEPS) + ['backbone'])
    parser.add_argument(
        '--backbone',
        action='store_true',
        help='also time the VGG-16 LargeFOV forward')
    parser.add_argument(
        '--one',
        nargs=3,
        metavar=('SIZE', 'MODE', 'STEP'),
        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    steps = list(args.steps) + (['backbone'] if args.backbone else [])
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    print(f'{"size":>10} {"mode":>9} {"step":>10} {"seconds":>8} '
          f'{"peak MiB":>9}')
    for size in args.sizes:
        for step in steps:
            modes = args.modes if step in ('unaries', 'retrieval') \
                else args.modes[:1]
            for mode in modes:
                out = subprocess.run(
                    [sys.executable, __file__, '--one', size, mode, step],
                    capture_output=True,
                    text=True,
                    cwd=repo,
                    env=dict(__import__('os').environ, PYTHONPATH=repo))
                if out.returncode:
                    print(f'{size:>10} {mode:>9} {step:>10}  failed: '
                          f'{out.stderr.strip().splitlines()[-1]}')
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                shown = mode if step in ('unaries', 'retrieval') else '-'
                print(
                    f'{size:>10} {shown:>9} {step:>10} '
                    f'{r["seconds"]:8.2f} {r["peak_mib"]:9.1f}',
                    flush=True)


if __name__ == '__main__':
    main()
