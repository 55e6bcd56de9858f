"""Training-step overhead of mmengine's Runner against a bare PyTorch loop.

For stage 1 (``configs/bana/bap_vgg16_voc.py``, BAP classifier) and stage 3
(``configs/bana/deeplabv1_nal_voc.py``, DeepLab-V1 + NAL), on the same
images (coco128_voc20 train), batch, crop and loader workers, from random
initialisation:

* **Runner**: ``Runner.from_cfg`` of the paper config, i.e. what
  ``tools/train.py`` runs (its hooks, data preprocessor, data samples,
  logging; validation and checkpoint files off). Step time = the
  ``train/time`` of mmengine's ``IterTimerHook`` (the "time" of the logs).
* **bare**: the same model modules, initial weights (Kaiming, the
  backbone's random init) and optimizer parameter groups, batches
  from the same dataset, sampler and worker seeds, but collated to plain
  tensors in the workers and trained by a plain loop (``bare_steps.py``).
  Step time from ``torch.utils.benchmark``.

Before timing, the loss of one batch is computed both ways and must agree.
After the timed steps, ``--profile-steps`` more steps of each are profiled
(mmengine's ``ProfilerHook`` for the Runner, ``torch.profiler`` for the bare
loop) with named regions (data wait, data preprocessor, backbone, label
stacking, loss, accuracy, parse_losses, backward, optimizer, every hook), and
two tables print where the difference goes: per region, and per ``aten::``
op (calls per step show e.g. a second upsampling or extra copies). Stage 2
and the pseudo labels are not needed: stage 3 trains on Ycrf = the ground
truth and Yret = its boxes filled with their class (written to a temporary
folder). The last line is the Runner / bare ratio of the median step times.

    PYTHONPATH=. .venv/bin/python tools/benchmarks/step_overhead.py \\
        [--stage 1 3] [--batch 4] [--crop 321] [--steps 12] [--warmup 3] \\
        [--workers 2] [--profile-steps 2] [--data-root DIR]

Quick check of the machinery (quarter width, few steps)::

    ... step_overhead.py --width-mult 0.25 --steps 2 --warmup 1 \\
        --profile-steps 1
"""
from __future__ import annotations

import argparse
import copy
import os
import os.path as osp
import sys
import tempfile
import uuid
import xml.etree.ElementTree as ET
from contextlib import ExitStack
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from bare_steps import LOSSES, BareCollate, bare_step, to_device
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook, ProfilerHook
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner

from bana_mm.utils.benchmark import (DATALOADER_NEXT, from_times, interleaved,
                                     labelled, load_average, op_diff_table,
                                     profile_calls, region_ms, region_table,
                                     step_ms)
from bana_mm.utils.label_io import read_label_png, write_label_png

CONFIGS = {
    1: 'configs/bana/bap_vgg16_voc.py',
    3: 'configs/bana/deeplabv1_nal_voc.py'
}
DATA = osp.join(osp.dirname(REPO), 'shared', 'data', 'coco128_voc20')
#: (row, label or labels in the Runner profile, in the bare profile, nested)
ROWS = {
    1: [('data wait (DataLoader __next__)', DATALOADER_NEXT, DATALOADER_NEXT),
        ('data preprocessor', 'data_preprocessor', None),
        ('backbone forward', 'backbone', 'backbone'),
        ('BAP pooling (per image)', 'BAP pooling', 'BAP pooling'),
        ('  of which RoIAlign', 'RoIAlign', 'RoIAlign'),
        ('classifier + CE (+ acc_fg)', 'head.loss - BAP pooling', 'loss'),
        ('parse_losses (sum, log_vars)', 'parse_losses', None),
        ('backward', 'backward', 'backward'),
        ('optimizer step + zero_grad', 'optimizer step + zero_grad',
         'optimizer step + zero_grad'),
        ('hooks (before/after_train_iter)', 'hooks', None)],
    3: [('data wait (DataLoader __next__)', DATALOADER_NEXT, DATALOADER_NEXT),
        ('data preprocessor (incl. Yret pad)', 'data_preprocessor', None),
        ('backbone forward', 'backbone', 'backbone'),
        ('classifier', 'head.forward', 'head.forward'),
        ('stack Ycrf + Yret in the head', 'stack labels', None),
        ('upsample to label size (fwd)', 'aten::upsample_bilinear2d',
         'aten::upsample_bilinear2d'), ('loss (NAL)', 'loss', 'loss'),
        ('accuracy (logged only)', 'accuracy', None),
        ('parse_losses (sum, log_vars)', 'parse_losses', None),
        ('backward', 'backward', 'backward'),
        ('optimizer step + zero_grad', 'optimizer step + zero_grad',
         'optimizer step + zero_grad'),
        ('hooks (before/after_train_iter)', 'hooks', None)],
}

#: rows whose calls per step are shown (e.g. one upsampling, K RoIAligns)
COUNTED = ('aten::upsample_bilinear2d', 'RoIAlign', 'accuracy', 'stack labels',
           'data_preprocessor', 'backbone')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--stage', type=int, nargs='+', default=[1, 3], choices=[1, 3])
    parser.add_argument('--data-root', default=DATA)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--crop', type=int, default=321)
    parser.add_argument('--steps', type=int, default=12)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--profile-steps', type=int, default=2)
    parser.add_argument(
        '--width-mult',
        type=float,
        default=1.0,
        help='backbone width (1.0 = the paper model)')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--top-ops', type=int, default=15)
    args = parser.parse_args(argv)
    if min(args.batch, args.steps, args.profile_steps) < 1 or \
            args.warmup < 0 or args.workers < 0:
        parser.error('--batch, --steps, --profile-steps must be >= 1')
    if not osp.isdir(args.data_root):
        parser.error(f'--data-root {args.data_root} is not a folder')
    return args


# ------------------------------------------------------------------ setup
def object_classes(root: str) -> Tuple[str, ...]:
    with open(osp.join(root, 'class_names.txt')) as f:
        names = [line.strip() for line in f if line.strip()]
    return tuple(n for n in names if n.lower() != 'background')


def write_box_labels(root: str, classes: Tuple[str, ...], out: str) -> str:
    """Ycrf = ground truth, Yret = boxes filled with their class (largest
    first), as label PNGs in ``out/{Ycrf,Yret}``."""
    index = {name: i + 1 for i, name in enumerate(classes)}
    with open(osp.join(root, 'ImageSets/Segmentation/train.txt')) as f:
        ids = f.read().split()
    for img_id in ids:
        gt = read_label_png(
            osp.join(root, 'SegmentationClass', img_id + '.png'))
        ret = np.zeros_like(gt)
        objs = []
        for obj in ET.parse(osp.join(root, 'Annotations',
                                     img_id + '.xml')).iter('object'):
            box = [
                int(float(obj.find(f'bndbox/{k}').text))
                for k in ('xmin', 'ymin', 'xmax', 'ymax')
            ]
            objs.append((box, index[obj.find('name').text]))
        objs.sort(key=lambda o: -(o[0][2] - o[0][0]) * (o[0][3] - o[0][1]))
        for (x1, y1, x2, y2), label in objs:
            ret[y1 - 1:y2, x1 - 1:x2] = label
        write_label_png(osp.join(out, 'Ycrf', img_id + '.png'), gt)
        write_label_png(osp.join(out, 'Yret', img_id + '.png'), ret)
    return out


def build_config(stage: int, args: argparse.Namespace, work_dir: str,
                 labels: Optional[str]) -> Config:
    cfg = Config.fromfile(osp.join(REPO, CONFIGS[stage]))
    classes = object_classes(args.data_root)
    crop = (args.crop, args.crop)
    loader = cfg.train_dataloader
    loader.update(batch_size=args.batch, num_workers=args.workers)
    if args.workers == 0:
        loader.persistent_workers = False
    loader.dataset.update(
        data_root=args.data_root.rstrip('/') + '/',
        ann_file='ImageSets/Segmentation/train.txt',
        metainfo=dict(classes=classes))
    for step in loader.dataset.pipeline:
        if step['type'] == 'RandomCrop':
            step['crop_size'] = crop
    width = args.width_mult
    # random initialisation: the backbone's Kaiming instead of `pretrained`
    cfg.model.backbone.width_mult = width
    cfg.model.backbone['init_cfg'] = dict(  # replaced, not merged
        type='Kaiming',
        layer='Conv2d',
        mode='fan_out',
        nonlinearity='relu')
    if stage == 1:
        cfg.model.head.update(
            in_channels=int(1024 * width), num_classes=len(classes))
    else:
        loader.dataset.pseudo_label_dir = labels
        cfg.model.data_preprocessor.size = crop
        cfg.model.decode_head.update(
            in_channels=int(1024 * width), num_classes=len(classes) + 1)
    iters = args.warmup + args.steps + 1 + args.profile_steps
    cfg.train_cfg.update(max_iters=iters, val_interval=iters + 1)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint.save_last = False
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=args.seed)
    cfg.experiment_name = f'step_overhead_{stage}_{uuid.uuid4().hex[:6]}'
    return cfg


# ----------------------------------------------------------------- labels
def model_targets(model, stage: int) -> List[tuple]:
    """(object, attribute, label) of the regions named in both paths."""
    import mmcv.ops
    targets = [(model.backbone, 'forward', 'backbone'),
               (mmcv.ops, 'roi_align', 'RoIAlign')]
    return targets


def runner_targets(runner, stage: int) -> List[tuple]:
    model = runner.model
    targets = [(model, 'train_step', 'model.train_step'),
               (model.data_preprocessor, 'forward', 'data_preprocessor'),
               (model, 'parse_losses', 'parse_losses'),
               (runner.optim_wrapper, 'backward', 'backward'),
               (runner.optim_wrapper, 'step', 'optimizer step'),
               (runner.optim_wrapper, 'zero_grad', 'zero_grad')]
    if stage == 1:
        targets += [(model.head, 'loss', 'head.loss'),
                    (model.head, 'pool', 'BAP pooling')]
    else:
        head = model.decode_head
        # the module whose loss_by_feat computes the logged accuracy
        heads = sys.modules[type(head).loss_by_feat.__module__]
        targets += [(head, 'forward', 'head.forward'),
                    (head, '_stack_batch_gt', 'stack labels'),
                    (head, '_stack_ret_gt', 'stack labels'),
                    (head.loss_decode, 'forward', 'loss')]
        for name in ('pixel_accuracy', 'accuracy'):  # whichever it uses
            if hasattr(heads, name):
                targets.append((heads, name, 'accuracy'))
                break
    for hook in runner.hooks:
        if isinstance(hook, (ProfilerHook, _Labels)):
            continue
        for name in ('before_train_iter', 'after_train_iter'):
            if getattr(type(hook), name) is not getattr(Hook, name):
                targets.append(
                    (hook, name, f'hook {type(hook).__name__}.{name}'))
    return targets


class _Labels(Hook):
    """Names the Runner's regions for the profiler during training."""

    priority = 'HIGHEST'

    def __init__(self, stage: int) -> None:
        self.stage = stage
        self.stack = ExitStack()

    def before_train(self, runner) -> None:
        self.stack.enter_context(
            labelled(
                model_targets(runner.model, self.stage) +
                runner_targets(runner, self.stage)))

    def after_train(self, runner) -> None:
        self.stack.close()


def regions(prof, steps: int,
            runner: bool) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Inclusive ms and calls per step of every label, plus derived rows."""
    found = region_ms(prof, steps)
    ms = {k: v[0] for k, v in found.items()}
    calls = {k: v[1] for k, v in found.items()}
    ms['optimizer step + zero_grad'] = ms.get('optimizer step', 0.0) + \
        ms.get('zero_grad', 0.0)
    if runner:
        ms['hooks'] = sum(v for k, v in ms.items() if k.startswith('hook '))
        ms['head.loss - BAP pooling'] = ms.get('head.loss', 0.0) - \
            ms.get('BAP pooling', 0.0)
    ms['step'] = step_ms(prof)
    return ms, calls


# ------------------------------------------------------------------- main
def check_same_loss(model, stage: int, dataset, collate: BareCollate,
                    batch: int) -> Tuple[float, float]:
    """Loss of one batch through the project's model API and the bare
    loop (eval mode: no dropout), which must agree."""
    samples = [dataset[i] for i in range(batch)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(
            pseudo_collate(copy.deepcopy(samples)), True)
        project, _ = model.parse_losses(
            model.loss(data['inputs'], data['data_samples']))
        bare = LOSSES[stage](model,
                             to_device(
                                 collate(samples),
                                 next(model.parameters()).device))
    model.train(was_training)
    project, bare = float(project), float(bare)
    if abs(project - bare) > 1e-4 * max(1.0, abs(project)):
        raise RuntimeError(f'stage {stage}: the bare loop computes loss '
                           f'{bare} but the project {project} on the same '
                           'batch; the comparison would be meaningless')
    return project, bare


def run_stage(stage: int, args: argparse.Namespace, tmp: str) -> float:
    labels = None
    if stage == 3:
        labels = write_box_labels(args.data_root,
                                  object_classes(args.data_root),
                                  osp.join(tmp, 'labels'))
    cfg = build_config(stage, args, osp.join(tmp, f'work{stage}'), labels)
    traces = []
    hook = ProfilerHook(
        by_epoch=False,
        profile_times=cfg.train_cfg.max_iters,
        schedule=dict(
            wait=args.warmup + args.steps,
            warmup=1,
            active=args.profile_steps,
            repeat=1),
        on_trace_ready=traces.append)
    runner = Runner.from_cfg(cfg)  # sets up the environment for both
    runner.register_hook(hook)
    runner.register_hook(_Labels(stage))
    model = runner.model
    # both paths start from the same weights: initialise once here (the
    # Runner's own init_weights is then a no-op) and restore them below
    model.init_weights()
    start = copy.deepcopy(model.state_dict())

    # bare loop: same modules, dataset, sampler seed and worker seeds
    prep = cfg.model.data_preprocessor
    collate = BareCollate(stage, prep.mean, prep.get('size'))
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.collate_fn = dict(type=collate)
    loader = Runner.build_dataloader(loader_cfg, seed=runner.seed)
    project, bare = check_same_loss(model, stage, loader.dataset, collate,
                                    args.batch)
    optimizer = build_optim_wrapper(model,
                                    copy.deepcopy(cfg.optim_wrapper)).optimizer
    model.train()
    batches = iter(loader)
    step = bare_step(model, optimizer, batches, stage)
    bare_time = interleaved({'bare': step}, args.steps, args.warmup,
                            f'stage {stage}')['bare']
    with labelled(model_targets(model, stage)):
        bare_prof = profile_calls(step, args.profile_steps)
    del batches, loader, step, optimizer
    model.load_state_dict(start)

    runner.train()
    history = runner.message_hub.get_scalar('train/time').data[0]
    timed = slice(args.warmup, args.warmup + args.steps)
    runner_time = from_times(history[timed], 'runner')
    data_time = runner.message_hub.get_scalar('train/data_time').data[0]
    runner_prof = traces[-1]

    # ------------------------------------------------------------ report
    p = args.profile_steps
    (ra, ca), (rb, cb) = regions(runner_prof, p, True), \
        regions(bare_prof, p, False)
    rows = []
    for name, a, b in ROWS[stage]:
        row = (name, ra.get(a, 0.0), None if b is None else rb.get(b, 0.0))
        if a in COUNTED:
            row += (ca.get(a, 0.0), None if b is None else cb.get(b, 0.0))
        rows.append(row)
    top = [r for r in rows if not r[0].startswith('  ')]
    rows.append(
        ('other (loop, glue, model.train())',
         ra['step'] - sum(r[1] for r in top), rb['step'] - sum(r[2] or 0.0
                                                               for r in top)))
    rows.append(('step (ProfilerStep span)', ra['step'], rb['step']))
    ratio = runner_time.median / bare_time.median
    print(f'\n== stage {stage}: {CONFIGS[stage]} (width x{args.width_mult}),'
          f' batch {args.batch}, crop {args.crop}, {args.workers} loader '
          f'workers, torch threads {torch.get_num_threads()}, load '
          f'{load_average()}')
    print(f'  loss of one batch: project {project:.6f}, bare {bare:.6f}')
    print(f'  step time over {args.steps} steps after {args.warmup} '
          'warm-up: median (IQR) s')
    print(f'    Runner {runner_time.median:8.3f} ({runner_time.iqr:.3f})'
          f'   bare {bare_time.median:8.3f} ({bare_time.iqr:.3f})')
    print('    Runner per iteration (s, data wait in brackets): ' +
          ', '.join(f'{t:.2f} ({d:.2f})' for t, d in zip(history, data_time)))
    print(f'  profile of {p} step(s) each, inclusive CPU ms per step of the '
          'main process (profiler overhead included):')
    print(region_table(rows, ('Runner', 'bare')))
    print(
        op_diff_table(runner_prof, bare_prof, p, p, ('Runner', 'bare'),
                      args.top_ops))
    print(f'stage {stage}: Runner / bare step-time ratio {ratio:.3f}')
    return ratio


def main(argv=None) -> Dict[int, float]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import bana_mm.det  # noqa: F401
    import bana_mm.seg  # noqa: F401
    ratios = {}
    with tempfile.TemporaryDirectory(prefix='step_overhead_') as tmp:
        for stage in args.stage:
            os.makedirs(osp.join(tmp, 'labels'), exist_ok=True)
            ratios[stage] = run_stage(stage, args, tmp)
    print('Runner / bare step-time ratio: ' +
          ', '.join(f'stage {s} {r:.3f}' for s, r in ratios.items()))
    return ratios


if __name__ == '__main__':
    main()
