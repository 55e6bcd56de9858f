"""Training-step time of NAL against plain cross-entropy (issue: < 5% extra).

Same DeepLab-V1 LargeFOV model, same batch, same optimizer; the decode head's
loss is swapped between NoiseAwareLoss(mode='nal') and mmseg's
CrossEntropyLoss every step (interleaved, so CPU load from other processes
hits both alike; ``bana_mm.utils.benchmark.interleaved``). Prints the median
step times, their ratio and the median of the per-round ratios.

    python tools/benchmarks/nal_vs_ce_step.py [--width-mult 1.0]
        [--crop 321] [--batch 2] [--classes 21] [--steps 4]
"""
import argparse
import copy
import os.path as osp
import sys

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from bana_mm.utils.benchmark import interleaved, paired_ratio

CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'bana', 'deeplabv1_nal_voc.py')


def make_batch(batch: int, crop: int, classes: int) -> dict:
    """Random images; Ycrf of random 16x16 blocks, Yret = Ycrf with ~20% of
    the blocks changed (so S and ~S are both non-empty)."""
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    cells = (crop + 15) // 16
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(
            torch.randint(
                0, 256, (3, crop, crop), generator=g, dtype=torch.uint8))
        blocks = torch.randint(0, classes, (cells, cells), generator=g)
        flip = torch.rand(cells, cells, generator=g) < 0.2
        other = (blocks + 1) % classes

        def up(t):
            return t.repeat_interleave(16, 0).repeat_interleave(
                16, 1)[:crop, :crop][None]

        s = SegDataSample(
            metainfo=dict(img_shape=(crop, crop), ori_shape=(crop, crop)))
        s.gt_sem_seg = PixelData(data=up(blocks))
        s.gt_ret_seg = PixelData(data=up(torch.where(flip, other, blocks)))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--width-mult', type=float, default=1.0)
    parser.add_argument('--crop', type=int, default=321)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--classes', type=int, default=21)
    parser.add_argument('--steps', type=int, default=4)
    parser.add_argument('--warmup', type=int, default=1)
    args = parser.parse_args(argv)

    from mmseg.registry import MODELS

    import bana_mm.seg  # noqa: F401
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg = Config.fromfile(CONFIG).model
    cfg.backbone.update(width_mult=args.width_mult, init_cfg=None)
    cfg.decode_head.update(
        in_channels=int(1024 * args.width_mult), num_classes=args.classes)
    cfg.data_preprocessor.size = (args.crop, args.crop)
    model = MODELS.build(cfg)
    model.train()
    head = model.decode_head
    losses = dict(
        nal=MODELS.build(dict(type='NoiseAwareLoss', mode='nal')),
        ce=MODELS.build(dict(type='CrossEntropyLoss', loss_name='loss_ce')))
    optim = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9))
    batch = make_batch(args.batch, args.crop, args.classes)

    def step(name: str) -> None:
        head.loss_decode = losses[name]
        log = model.train_step(copy.deepcopy(batch), optim)
        if not torch.isfinite(log['loss']):
            raise RuntimeError(f'{name} loss is not finite')

    times = interleaved({k: (lambda k=k: step(k))
                         for k in ('nal', 'ce')}, args.steps, args.warmup,
                        'NAL vs CE step')
    nal, ce = times['nal'].median, times['ce'].median
    ratio = nal / ce
    print(f'model: DeepLab-V1 LargeFOV width x{args.width_mult}, batch '
          f'{args.batch}, crop {args.crop}, {args.classes} classes, '
          f'{args.steps} steps each (interleaved)')
    print(f'median step time: NAL {nal * 1000:.1f} ms, CE {ce * 1000:.1f} ms')
    print(f'NAL / CE step-time ratio: {ratio:.3f} '
          f'({(ratio - 1) * 100:+.1f}% extra; paired '
          f'{paired_ratio(times["nal"], times["ce"]):.3f})')
    return ratio


if __name__ == '__main__':
    main()
