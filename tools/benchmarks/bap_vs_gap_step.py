"""Time one stage-1 training step with the BAP head against the GAP head.

Both models are built from the same config through mmdet's registry
(``BAPClassifier`` = VGG16LargeFOV backbone + ``BAPHead``), differ only in
``head.mode`` ('bap' vs 'gap'), start from identical weights and see the same
preprocessed batch at the same crop. A step is what mmengine's train loop
does after data preprocessing: ``model.loss`` (forward), ``parse_losses``,
then ``OptimWrapper.update_params`` (backward, gradient clipping if the
config has it, SGD step with the config's paramwise lrs, zero_grad).

The two modes are interleaved round by round with alternating order (BAP
GAP, GAP BAP, ...; ``bana_mm.utils.benchmark.interleaved`` over
``torch.utils.benchmark.Timer``) so that drift and load from other processes
hit both alike. Warm-up rounds are not timed. Each row prints the median
(IQR) and mean per mode, the ratio of the medians and the median of the
per-round BAP/GAP ratios ("paired", the figure least sensitive to a busy
machine).

Also measured, on features precomputed once by the backbone (so only the
head differs): ``head.loss`` forward, and forward + backward to the
features, i.e. BAP pooling (queries, attention, weighted RoIAlign, background
terms) against plain GAP pooling.

Memory, in separate untimed steps under ``torch.profiler`` with
``profile_memory=True``: the peak of the bytes allocated by tensors during a
step over those allocated before it (CPU or CUDA allocator, exact, unlike
the process RSS), and the exact bytes autograd saves for backward (distinct
storages, parameters excluded) for the whole model and for the head alone:
the activation memory to compare BAP and GAP by. ``ru_maxrss`` of the whole
process is printed too.

Default run (tiny preset: width 0.25, crop 161, batch 4, random boxes;
about half a minute on a 2-core CPU)::

    cd /work/main && PYTHONPATH=. .venv/bin/python \
        tools/benchmarks/bap_vs_gap_step.py

Other examples::

    # a real batch from a freshly generated synthetic dataset
    ... tools/benchmarks/bap_vs_gap_step.py --data dataset
    # the full-width VOC config (321 crop unless --crop), on GPU if present
    ... tools/benchmarks/bap_vs_gap_step.py --full --batch-size 20
"""
from __future__ import annotations

import argparse
import copy
import os.path as osp
import platform
import resource
import sys
import tempfile
import time
from typing import Dict

import numpy as np
import torch

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from bana_mm.utils.benchmark import (interleaved, load_average, mib,
                                     paired_ratio, peak_allocated,
                                     profile_calls, saved_tensor_bytes)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CONFIG = osp.join(REPO, 'configs/bana/bap_vgg16_tiny.py')
FULL_CONFIG = osp.join(REPO, 'configs/bana/bap_vgg16_voc.py')
MODES = ('bap', 'gap')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark a training step of the BAP vs the GAP head.')
    parser.add_argument(
        '--full',
        action='store_true',
        help='use configs/bana/bap_vgg16_voc.py (full width, '
        '321 crop) instead of the tiny preset')
    parser.add_argument('--config', help='any other stage-1 config')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument(
        '--crop',
        type=int,
        default=None,
        help='square crop size (default: the config\'s, '
        '161 tiny / 321 full)')
    parser.add_argument(
        '--iters',
        type=int,
        default=10,
        help='timed rounds (each runs both modes once)')
    parser.add_argument(
        '--warmup', type=int, default=2, help='untimed rounds first')
    parser.add_argument(
        '--width-mult',
        type=float,
        default=None,
        help='backbone width multiplier (default: the '
        'config\'s, 0.25 tiny / 1.0 full)')
    parser.add_argument(
        '--device', default=None, help='default: cuda if available, else cpu')
    parser.add_argument(
        '--data',
        choices=('random', 'dataset'),
        default='random',
        help='random: uniform noise images with random '
        'boxes; dataset: one batch through the config\'s '
        'train pipeline')
    parser.add_argument(
        '--data-root',
        help='VOC-layout folder for --data dataset (default: '
        'generate a small synthetic one in a temp dir)')
    parser.add_argument(
        '--boxes',
        type=int,
        default=3,
        help='max boxes per image for --data random')
    parser.add_argument(
        '--head-iters',
        type=int,
        default=None,
        help='rounds of the head-only timing (default: '
        '5 x --iters)')
    parser.add_argument(
        '--mem-iters',
        type=int,
        default=1,
        help='untimed profiled steps per mode for memory')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads (CPU)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.iters < 1 or args.warmup < 0:
        parser.error('--batch-size and --iters must be >= 1, --warmup >= 0')
    if args.crop is not None and args.crop < 16:
        parser.error('--crop must be >= 16')
    return args


# --------------------------------------------------------------------------- #
# Setup
# --------------------------------------------------------------------------- #
def load_config(args: argparse.Namespace) -> Config:
    path = args.config or (FULL_CONFIG if args.full else TINY_CONFIG)
    cfg = Config.fromfile(path)
    backbone = cfg.model.backbone
    width = args.width_mult if args.width_mult is not None else \
        backbone.get('width_mult', 1.0)
    backbone.width_mult = width
    if (backbone.get('init_cfg') or {}).get('type') == 'Pretrained':
        backbone.init_cfg = None  # random weights: the time does not care
    cfg.model.head.in_channels = max(1, int(1024 * width))
    if args.crop is None:
        args.crop = int(cfg.get('crop_size', (321, 321))[0])
    args.width_mult = width
    args.config_path = path
    return cfg


def build_models(cfg: Config,
                 device: torch.device) -> Dict[str, torch.nn.Module]:
    from mmdet.registry import MODELS
    models = {}
    for mode in MODES:
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.head.mode = mode
        models[mode] = MODELS.build(model_cfg)
    models['bap'].init_weights()
    # Identical starting weights (the head has no mode-specific parameter).
    models['gap'].load_state_dict(models['bap'].state_dict())
    for model in models.values():
        model.to(device).train()
    return models


def random_batch(args: argparse.Namespace) -> dict:
    """Noise images with 1..``--boxes`` random boxes each (10-50% sides)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(args.seed)
    size = args.crop
    num_classes = args.num_classes
    inputs, samples = [], []
    for _ in range(args.batch_size):
        inputs.append(
            torch.from_numpy(
                rng.integers(0, 256, (3, size, size), dtype=np.uint8)))
        k = int(rng.integers(1, args.boxes + 1))
        wh = rng.uniform(0.1, 0.5, (k, 2)) * size
        xy = rng.uniform(0, 1, (k, 2)) * (size - wh)
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size),
                scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=HorizontalBoxes(torch.from_numpy(boxes)),
            labels=torch.from_numpy(rng.integers(0, num_classes, k)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def dataset_batch(cfg: Config, args: argparse.Namespace) -> dict:
    """``--batch-size`` samples through the config's train pipeline."""
    from mmdet.registry import DATASETS
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    for step in ds_cfg.pipeline:
        if step['type'] == 'RandomCrop':
            step['crop_size'] = (args.crop, args.crop)
    tmp = None
    if args.data_root is None:
        from bana_mm.datagen import (SYNTHETIC_CLASSES,
                                     generate_synthetic_dataset)
        tmp = tempfile.TemporaryDirectory(prefix='bap_vs_gap_')
        generate_synthetic_dataset(
            tmp.name, num_train=args.batch_size, num_val=1, seed=args.seed)
        ds_cfg.data_root = tmp.name
        ds_cfg.ann_file = 'ImageSets/Segmentation/train.txt'
        ds_cfg.metainfo = dict(classes=SYNTHETIC_CLASSES)
    else:
        ds_cfg.data_root = args.data_root
    np.random.seed(args.seed)
    dataset = DATASETS.build(ds_cfg)
    batch = pseudo_collate(
        [dataset[i % len(dataset)] for i in range(args.batch_size)])
    if tmp is not None:
        tmp.cleanup()
    return batch


def head_num_classes(cfg: Config) -> int:
    return int(cfg.model.head.num_classes)


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #
def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    torch.manual_seed(args.seed)
    # A quiet current logger: no per-parameter init/paramwise INFO lines.
    MMLogger.get_instance('bap_vs_gap_step', log_level='WARNING')
    init_default_scope('mmdet')
    import bana_mm.det  # noqa: F401  (registers BAPClassifier, datasets)

    cfg = load_config(args)
    args.num_classes = head_num_classes(cfg)
    models = build_models(cfg, device)
    wrappers = {
        m: build_optim_wrapper(models[m], copy.deepcopy(cfg.optim_wrapper))
        for m in MODES
    }

    raw = dataset_batch(cfg, args) if args.data == 'dataset' \
        else random_batch(args)
    # Same preprocessed batch for both modes (the preprocessors are equal).
    with torch.no_grad():
        data = models['bap'].data_preprocessor(raw, True)
    inputs, samples = data['inputs'], data['data_samples']
    last_vars: Dict[str, dict] = {}

    def train_step(mode: str) -> None:
        model, wrapper = models[mode], wrappers[mode]
        losses = model.loss(inputs, samples)
        loss, last_vars[mode] = model.parse_losses(losses)
        wrapper.update_params(loss)

    load_before = load_average()
    t0 = time.perf_counter()
    step = interleaved({m: (lambda m=m: train_step(m))
                        for m in MODES}, args.iters, args.warmup, 'train step')

    # Head alone, on features precomputed once by a backbone (same for both).
    with torch.no_grad():
        feats = models['bap'].extract_feat(inputs).detach()
    heads = {m: models[m].head for m in MODES}

    def head_fwd(mode: str) -> None:
        with torch.no_grad():
            heads[mode].loss(feats, samples)

    def head_fwd_bwd(mode: str) -> None:
        leaf = feats.clone().requires_grad_(True)
        heads[mode].loss(leaf, samples)['loss_cls'].backward()
        heads[mode].zero_grad(set_to_none=True)

    head_iters = args.head_iters or 5 * args.iters
    head_fwd_ms = interleaved({m: (lambda m=m: head_fwd(m))
                               for m in MODES}, head_iters,
                              max(1, args.warmup), 'head fwd')
    head_bwd_ms = interleaved(
        {m: (lambda m=m: head_fwd_bwd(m))
         for m in MODES}, head_iters, max(1, args.warmup), 'head fwd+bwd')

    # Memory, in separate untimed steps (profiling costs time).
    peak = {
        m:
        peak_allocated(
            profile_calls(
                lambda m=m: train_step(m), args.mem_iters, memory=True),
            device)
        for m in MODES
    }
    saved = {
        m:
        saved_tensor_bytes(
            lambda m=m: models[m].loss(inputs, samples), models[m])
        for m in MODES
    }
    leaf = feats.clone().requires_grad_(True)
    saved_head = {
        m:
        saved_tensor_bytes(lambda m=m: heads[m].loss(leaf, samples), heads[m])
        for m in MODES
    }
    for model in models.values():
        model.zero_grad(set_to_none=True)
    total_s = time.perf_counter() - t0

    # ------------------------------------------------------------------ #
    h, w = inputs.shape[-2:]
    fh, fw = feats.shape[-2:]
    num_boxes = [len(s.gt_instances) for s in samples]
    print('BAP vs GAP training step benchmark')
    print(f'  config     : {osp.relpath(args.config_path, REPO)} '
          f'(width_mult={args.width_mult}, head in_channels='
          f'{cfg.model.head.in_channels}, norm='
          f'{cfg.model.backbone.get("norm_cfg")})')
    print(f'  device     : {device} | torch {torch.__version__} | threads '
          f'{torch.get_num_threads()} | '
          f'{platform.processor() or platform.machine()}')
    print(f'  batch      : {args.batch_size} x 3 x {h} x {w} ({args.data}), '
          f'features {feats.shape[1]} x {fh} x {fw}, boxes/image '
          f'{num_boxes}')
    print(f'  rounds     : {args.warmup} warm-up + {args.iters} timed, '
          f'interleaved with alternating order; head-only: {head_iters}')
    print(f'  load avg   : {load_before} before, {load_average()} after '
          '(other processes on the machine widen the IQR)')
    fallback = last_vars['bap'].get('fallback_share')
    if fallback is not None:
        print(f'  BAP fallback-to-GAP share in the batch: {fallback:.2f}')
    print()
    print(f'  {"ms":26s}{"BAP median (IQR)":>22s}{"GAP median (IQR)":>22s}'
          f'{"ratio":>8s}{"paired":>8s}')

    def row(name: str, per_mode: dict) -> None:
        b, g = per_mode['bap'], per_mode['gap']
        print(f'  {name:26s}{b.median * 1e3:12.2f} ({b.iqr * 1e3:6.2f})'
              f'{g.median * 1e3:14.2f} ({g.iqr * 1e3:6.2f})'
              f'{b.median / g.median:8.3f}{paired_ratio(b, g):8.3f}')
        print(f'  {"  mean":26s}{b.mean * 1e3:12.2f}{g.mean * 1e3:23.2f}'
              f'{b.mean / g.mean:17.3f}')

    row('train step (fwd+bwd+SGD)', step)
    row('head.loss fwd', head_fwd_ms)
    row('head.loss fwd+bwd', head_bwd_ms)
    share = {m: head_bwd_ms[m].median / step[m].median for m in MODES}
    print(f'  {"head fwd+bwd / step":26s}{share["bap"]:21.1%} '
          f'{share["gap"]:21.1%}')
    for name, values in (('peak step memory',
                          peak), ('saved for backward, model', saved),
                         ('saved for backward, head', saved_head)):
        print(f'  {name:26s}{mib(values["bap"]):>22s}'
              f'{mib(values["gap"]):>22s}'
              f'{values["bap"] / max(values["gap"], 1):8.3f}')
    print(f'  memory: "peak step memory" = peak of the bytes allocated by '
          f'tensors ({device.type} allocator, torch.profiler '
          f'profile_memory) during a step over those allocated before it, '
          f'max over {args.mem_iters} untimed step(s) per mode; "saved for '
          'backward" = distinct storages autograd keeps after the forward '
          'pass (exact)')
    if device.type != 'cuda':
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f'  process ru_maxrss (both modes, whole run): {mib(maxrss)}')
    print('  final losses: ' +
          ', '.join(f'{m} {torch.as_tensor(last_vars[m]["loss"]).item():.4f}'
                    for m in MODES))
    print(f'  measured in {total_s:.1f} s')
    return dict(
        step=step,
        head_fwd=head_fwd_ms,
        head_fwd_bwd=head_bwd_ms,
        peak=peak,
        saved=saved,
        saved_head=saved_head)


if __name__ == '__main__':
    main()
