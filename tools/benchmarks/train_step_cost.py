"""What a training step costs against a bare PyTorch loop; what BAP, NAL add.

One table, a section per comparison (``--compare``); columns A, B, A - B,
A/B (of the medians) and "paired" (the median of the per-round A/B ratios
of interleaved runs, the figure least sensitive to a busy machine).

runner: mmengine's Runner (A) against a bare PyTorch loop (B), for stage 1
  (``--stage1-config``, BAP classifier) and stage 3 (``--stage3-config``,
  DeepLab-V1 + NAL), ``--stages``. A is ``Runner.from_cfg`` of the config,
  what tools/train.py runs (hooks, data preprocessor, data samples,
  logging; no validation, no checkpoint files); its step time is the
  ``train/time`` of mmengine's IterTimerHook. B runs the same model modules
  from the same initial weights, optimizer parameter groups, dataset,
  sampler and worker seeds, but its loader workers hand over plain tensors
  (mean subtracted, padded) and the main process runs backbone, the head's
  maths (the registry-free ``bana_mm.core`` functions), loss, backward,
  step, zero_grad (``bana_mm.utils.bare_loop``); its step time comes from
  torch.utils.benchmark. Both first compute the loss of one batch, which
  must agree. Then
  ``--profile-steps`` more steps of each are profiled with named regions
  (data wait, data preprocessor, backbone, label stacking, loss, accuracy,
  parse_losses, backward, optimizer, hooks; calls per step in brackets) and
  the ``aten::`` ops whose self time differs most. Stage 3 trains on
  Ycrf = the ground truth and Yret = its boxes filled with their class
  (written to a temporary folder): neither stage 1 nor 2 is needed.

bap: stage 1 with the BAP head (A) against GAP (B); nal: stage 3 with the
  config's loss (NoiseAwareLoss) against mmseg's CrossEntropyLoss (B). Two
  models with the same weights see the same preprocessed batch; a step is
  model.loss, parse_losses and OptimWrapper.update_params (backward,
  clipping if configured, SGD step, zero_grad), the two interleaved round by
  round in alternating order. Also the head alone on features computed
  once (loss forward; forward + backward to the features) and its share of
  a step, and memory in untimed steps: the peak of the bytes allocated by
  tensors during a step over those before it (torch.profiler,
  profile_memory) and the bytes autograd saves for backward (distinct
  storages, parameters excluded) of the model and of the head alone.

Data: ``--data-root`` (default ../shared/data/coco128_voc20 if present,
else the embedded synthetic set); bap / nal take ``--batch`` samples of it
through the config's train pipeline, or with ``--random-batch`` random
images with 1..``--boxes`` random boxes (stage 1) or label maps of random
16x16 blocks, ~20% of them different in Yret (stage 3). Models start from
random (Kaiming) weights: the time does not depend on them.

examples:
  python tools/benchmarks/train_step_cost.py --quick
  python tools/benchmarks/train_step_cost.py --compare runner --stages 3
  python tools/benchmarks/train_step_cost.py --compare bap \
      --stage1-config configs/bana/bap_vgg16_tiny.py --random-batch
  python tools/benchmarks/train_step_cost.py  # paper models: ~30 min, 2 cores
"""
from __future__ import annotations

import argparse
import copy
import gc
import os.path as osp
import sys
import tempfile
import uuid
import xml.etree.ElementTree as ET
from contextlib import ExitStack
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from mmengine.hooks import Hook

from bana_mm.utils import benchmark as bench
from bana_mm.utils.bare_loop import BareCollate, bare_step, check_same_loss

COMPARISONS = ('runner', 'bap', 'nal')
CONFIGS = {
    1: osp.join(REPO, 'configs/bana/bap_vgg16_voc.py'),
    3: osp.join(REPO, 'configs/bana/deeplabv1_nal_voc.py')
}
QUICK = dict(
    width_mult=0.25,
    crop=161,
    batch=2,
    steps=2,
    warmup=1,
    head_steps=2,
    profile_steps=1,
    top_ops=3,
    workers=0)
WAIT = bench.DATALOADER_NEXT
#: Profile rows of the runner comparison: (row, label in the Runner's
#: profile, label in the bare loop's or None); '  ' marks a nested row.
REGIONS = {
    1: [('data wait (DataLoader __next__)', WAIT, WAIT),
        ('data preprocessor', 'data_preprocessor', None),
        ('backbone forward', 'backbone', 'backbone'),
        ('BAP pooling (per image)', 'BAP pooling', 'BAP pooling'),
        ('  of which RoIAlign', 'RoIAlign', 'RoIAlign'),
        ('classifier + CE (+ acc_fg)', 'head.loss - BAP pooling', 'loss'),
        ('parse_losses', 'parse_losses', None),
        ('backward', 'backward', 'backward'),
        ('optimizer step + zero_grad', 'optimizer', 'optimizer'),
        ('hooks (before/after_train_iter)', 'hooks', None)],
    3: [('data wait (DataLoader __next__)', WAIT, WAIT),
        ('data preprocessor (incl. Yret pad)', 'data_preprocessor', None),
        ('backbone forward', 'backbone', 'backbone'),
        ('classifier', 'head.forward', 'head.forward'),
        ('stack Ycrf + Yret in the head', 'stack labels', None),
        ('upsample to label size (fwd)', 'aten::upsample_bilinear2d',
         'aten::upsample_bilinear2d'), ('loss (NAL)', 'loss', 'loss'),
        ('accuracy (logged only)', 'accuracy', None),
        ('parse_losses', 'parse_losses', None),
        ('backward', 'backward', 'backward'),
        ('optimizer step + zero_grad', 'optimizer', 'optimizer'),
        ('hooks (before/after_train_iter)', 'hooks', None)],
}
#: Labels whose calls per step the table shows (one upsampling, K RoIAligns).
COUNTED = ('aten::upsample_bilinear2d', 'RoIAlign', 'accuracy', 'stack labels',
           'data_preprocessor', 'backbone')
#: A table row: comparison, row, A, B, A - B, A/B, paired.
Row = Tuple[str, str, object, object, object, object, object]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The options, with ``--quick`` defaults if asked."""
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog=__doc__[__doc__.index('\n') + 1:],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--compare', nargs='+', default=list(COMPARISONS), choices=COMPARISONS)
    parser.add_argument(
        '--stages',
        type=int,
        nargs='+',
        default=[1, 3],
        choices=[1, 3],
        help='stages of the runner comparison')
    parser.add_argument(
        '--stage1-config', default=CONFIGS[1], help='BAP classifier config')
    parser.add_argument(
        '--stage3-config', default=CONFIGS[3], help='DeepLab + NAL config')
    parser.add_argument(
        '--width-mult',
        type=float,
        default=None,
        help='backbone width (default: the config\'s; 1.0 = the paper)')
    parser.add_argument(
        '--crop',
        type=int,
        default=None,
        help='square crop (default: the config\'s RandomCrop)')
    parser.add_argument('--batch', type=int, default=4, help='batch size')
    parser.add_argument(
        '--steps', type=int, default=10, help='timed steps (rounds)')
    parser.add_argument(
        '--warmup', type=int, default=2, help='untimed steps (rounds) first')
    parser.add_argument(
        '--head-steps',
        type=int,
        default=None,
        help='rounds of the head-only timing (default: 5 x --steps)')
    parser.add_argument(
        '--mem-steps',
        type=int,
        default=1,
        help='untimed profiled steps per model for the peak memory')
    parser.add_argument(
        '--profile-steps',
        type=int,
        default=2,
        help='profiled steps of the runner comparison (0: none)')
    parser.add_argument(
        '--top-ops',
        type=int,
        default=10,
        help='aten:: ops listed, those whose time differs most')
    parser.add_argument(
        '--workers', type=int, default=2, help='loader workers (runner)')
    parser.add_argument(
        '--data-root',
        default=None,
        help='VOC-layout image set (default: coco128_voc20 or synthetic)')
    parser.add_argument(
        '--random-batch',
        action='store_true',
        help='bap / nal: a random batch instead of one of the image set')
    parser.add_argument(
        '--boxes',
        type=int,
        default=3,
        help='most boxes per image of --random-batch')
    parser.add_argument(
        '--threads', type=int, default=None, help='torch threads')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    args = bench.parse_with_quick(parser, QUICK, argv)
    if min(args.batch, args.steps, args.mem_steps, args.boxes) < 1 or min(
            args.warmup, args.profile_steps, args.workers) < 0:
        parser.error('--batch, --steps, --mem-steps, --boxes must be >= 1; '
                     '--warmup, --profile-steps, --workers >= 0')
    if args.crop is not None and args.crop < 16:
        parser.error('--crop must be >= 16')
    return args


# ------------------------------------------------------------------- setup
def object_classes(root: str) -> Tuple[str, ...]:
    """The object classes of a VOC-layout folder (no background)."""
    from bana_mm.apis.common import VOCLayout
    names = VOCLayout.inspect(root).classes
    return tuple(n for n in names if n.lower() != 'background')


def write_box_labels(root: str, out: str) -> str:
    """Ycrf = the ground truth, Yret = the boxes filled with their class
    (largest first), as label PNGs in ``out/{Ycrf,Yret}``."""
    import numpy as np

    from bana_mm.utils.label_io import read_label_png, write_label_png
    index = {name: i + 1 for i, name in enumerate(object_classes(root))}
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


def build_config(stage: int, args: argparse.Namespace, tmp: str):
    """The stage's config on ``args.data_root`` at the benchmark's batch,
    crop, width and loader workers; random Kaiming weights; stage 3 on the
    labels of :func:`write_box_labels`; no validation, no checkpoints."""
    from mmengine.config import Config
    cfg = Config.fromfile(getattr(args, f'stage{stage}_config'))
    classes = object_classes(args.data_root)
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
            if args.crop is not None:
                step['crop_size'] = (args.crop, args.crop)
            crop = tuple(step['crop_size'])
    width = args.width_mult or cfg.model.backbone.get('width_mult', 1.0)
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
        labels = osp.join(tmp, 'labels')
        if not osp.isdir(labels):
            write_box_labels(args.data_root, labels)
        loader.dataset.pseudo_label_dir = labels
        cfg.model.data_preprocessor.size = crop
        cfg.model.decode_head.update(
            in_channels=int(1024 * width), num_classes=len(classes) + 1)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint.save_last = False
    cfg.work_dir = osp.join(tmp, f'work{stage}_{uuid.uuid4().hex[:6]}')
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=args.seed)
    cfg.experiment_name = f'train_step_cost_{stage}_{uuid.uuid4().hex[:6]}'
    cfg.crop = crop
    return cfg


def setting(cfg, args: argparse.Namespace) -> str:
    """The model and batch of a section, for the line above the table."""
    width = cfg.model.backbone.width_mult
    return (f'{osp.relpath(cfg.filename, REPO)}: width x{width}, batch '
            f'{args.batch}, crop {cfg.crop[0]}')


# ------------------------------------------------------ runner vs bare
def model_targets(model) -> List[tuple]:
    """(object, attribute, label) of the regions named in both paths."""
    import mmcv.ops
    return [(model.backbone, 'forward', 'backbone'),
            (mmcv.ops, 'roi_align', 'RoIAlign')]


def runner_targets(runner, stage: int) -> List[tuple]:
    """(object, attribute, label) of the Runner's own regions and hooks."""
    from mmengine.hooks import ProfilerHook
    model = runner.model
    targets = [(model.data_preprocessor, 'forward', 'data_preprocessor'),
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
        if isinstance(hook, (ProfilerHook, RegionLabels)):
            continue
        for name in ('before_train_iter', 'after_train_iter'):
            if getattr(type(hook), name) is not getattr(Hook, name):
                targets.append(
                    (hook, name, f'hook {type(hook).__name__}.{name}'))
    return targets


class RegionLabels(Hook):
    """Names the Runner's regions for the profiler while it trains."""

    priority = 'HIGHEST'

    def __init__(self, stage: int) -> None:
        self.stage = stage
        self.stack = ExitStack()

    def before_train(self, runner) -> None:
        self.stack.enter_context(
            bench.labelled(
                model_targets(runner.model) +
                runner_targets(runner, self.stage)))

    def after_train(self, runner) -> None:
        self.stack.close()


def regions(prof, steps: int) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Inclusive ms and calls per step of every label, with the sums the
    table shows (optimizer, hooks, head.loss without BAP pooling)."""
    found = bench.region_ms(prof, steps)
    ms = {k: v[0] for k, v in found.items()}
    calls = {k: v[1] for k, v in found.items()}
    ms['optimizer'] = ms.get('optimizer step', 0.0) + ms.get('zero_grad', 0.0)
    ms['hooks'] = sum(v for k, v in ms.items() if k.startswith('hook '))
    ms['head.loss - BAP pooling'] = ms.get('head.loss', 0.0) - \
        ms.get('BAP pooling', 0.0)
    ms['step'] = bench.step_ms(prof)
    return ms, calls


def runner_vs_bare(stage: int, args: argparse.Namespace, tmp: str,
                   notes: List[str]) -> List[Row]:
    """Rows of the Runner against the bare loop for one stage."""
    from mmengine.hooks import ProfilerHook
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner
    cfg = build_config(stage, args, tmp)
    p = args.profile_steps
    iters = args.warmup + args.steps + (1 + p if p else 0)
    cfg.train_cfg.update(max_iters=iters, val_interval=iters + 1)
    traces = []
    runner = Runner.from_cfg(cfg)  # sets up the environment for both
    if p:
        runner.register_hook(
            ProfilerHook(
                by_epoch=False,
                profile_times=iters,
                schedule=dict(
                    wait=args.warmup + args.steps,
                    warmup=1,
                    active=p,
                    repeat=1),
                on_trace_ready=traces.append))
        runner.register_hook(RegionLabels(stage))
    model = runner.model
    # both paths start from the same weights: initialise once here (the
    # Runner's own init_weights is then a no-op) and restore them below
    model.init_weights()
    start = copy.deepcopy(model.state_dict())

    prep = cfg.model.data_preprocessor
    collate = BareCollate(stage, prep.mean, prep.get('size'))
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.collate_fn = dict(type=collate)
    loader = Runner.build_dataloader(loader_cfg, seed=runner.seed)
    project, bare = check_same_loss(
        model, stage, [loader.dataset[i] for i in range(args.batch)], collate)
    optimizer = build_optim_wrapper(model,
                                    copy.deepcopy(cfg.optim_wrapper)).optimizer
    batches = iter(loader)
    step = bare_step(model, optimizer, batches, stage)
    bare_time = bench.interleaved({'bare': step}, args.steps,
                                  args.warmup)['bare']
    if p:
        with bench.labelled(model_targets(model)):
            bare_prof = bench.profile_calls(step, p)
    del batches, loader, step, optimizer
    model.load_state_dict(start)

    runner.train()
    timed = slice(args.warmup, args.warmup + args.steps)
    hub = runner.message_hub
    runner_time = bench.from_times(
        hub.get_scalar('train/time').data[0][timed], 'runner')
    data_time = bench.from_times(
        hub.get_scalar('train/data_time').data[0][timed], 'data')
    name = f'stage {stage} Runner | bare'
    notes.append(f'{name}: {setting(cfg, args)}, {args.workers} loader '
                 f'workers, {args.steps} steps after {args.warmup}')
    rows: List[Row] = [
        (name, 'loss of one batch (eval)', f'{project:.6f}', f'{bare:.6f}',
         f'{project - bare:.1e}', None, None),
        (name, 'step, ms median (IQR)', bench.median_iqr(runner_time),
         bench.median_iqr(bare_time),
         f'{(runner_time.median - bare_time.median) * 1e3:.1f}',
         f'{runner_time.median / bare_time.median:.3f}', None),
        (name, 'of which data wait, ms median (IQR)',
         bench.median_iqr(data_time), None, None, None, None),
    ]
    if p:
        rows += profile_rows(name, stage, traces[-1], bare_prof, p,
                             args.top_ops)
    del runner, model
    gc.collect()
    return rows


def profile_rows(name: str, stage: int, runner_prof, bare_prof, steps: int,
                 top: int) -> List[Row]:
    """Per-region and per-op rows of the two profiles (ms per step, calls
    per step in brackets for counted regions)."""
    (ra, ca), (rb, cb) = regions(runner_prof, steps), regions(bare_prof, steps)

    def cell(ms: Dict[str, float], calls: Dict[str, float],
             key: Optional[str]) -> Optional[str]:
        if key is None:
            return None
        text = f'{ms.get(key, 0.0):.1f}'
        return f'{text} (x{calls[key]:g})' if key in COUNTED and \
            calls.get(key) else text

    rows: List[Row] = []
    top_a = top_b = 0.0
    for label, a, b in REGIONS[stage]:
        ms_a, ms_b = ra.get(a, 0.0), None if b is None else rb.get(b, 0.0)
        if not label.startswith('  '):
            top_a, top_b = top_a + ms_a, top_b + (ms_b or 0.0)
        rows.append((name, f'profile: {label}, ms/step', cell(ra, ca, a),
                     cell(rb, cb,
                          b), f'{ms_a - (ms_b or 0.0):.1f}', None, None))
    other_a, other_b = ra['step'] - top_a, rb['step'] - top_b
    rows.append(
        (name, 'profile: other (loop, glue), ms/step', f'{other_a:.1f}',
         f'{other_b:.1f}', f'{other_a - other_b:.1f}', None, None))
    rows.append(
        (name, 'profile: step (ProfilerStep span), ms', f'{ra["step"]:.1f}',
         f'{rb["step"]:.1f}', f'{ra["step"] - rb["step"]:.1f}',
         f'{ra["step"] / rb["step"]:.3f}', None))
    for op, (ms_a, n_a), (ms_b, n_b) in bench.op_diffs(runner_prof, bare_prof,
                                                       steps, steps, top):
        rows.append(
            (name, f'op {op}, self ms/step', f'{ms_a:.1f} (x{n_a:g})',
             f'{ms_b:.1f} (x{n_b:g})', f'{ms_a - ms_b:.1f}', None, None))
    return rows


# ----------------------------------------------------- A against B
def random_batch(stage: int, args: argparse.Namespace, num_classes: int,
                 crop: int) -> dict:
    """``--batch`` random uint8 images with 1..``--boxes`` random boxes of
    10-50% sides (stage 1), or Ycrf of random 16x16 blocks and Yret with
    ~20% of them changed (stage 3)."""
    import numpy as np
    import torch
    from mmengine.structures import InstanceData, PixelData
    rng = np.random.default_rng(args.seed)
    inputs, samples = [], []
    meta = dict(
        img_shape=(crop, crop),
        ori_shape=(crop, crop),
        pad_shape=(crop, crop),
        scale_factor=(1.0, 1.0))
    for _ in range(args.batch):
        inputs.append(
            torch.from_numpy(
                rng.integers(0, 256, (3, crop, crop), dtype=np.uint8)))
        if stage == 1:
            from mmdet.structures import DetDataSample
            from mmdet.structures.bbox import HorizontalBoxes
            k = int(rng.integers(1, args.boxes + 1))
            wh = rng.uniform(0.1, 0.5, (k, 2)) * crop
            xy = rng.uniform(0, 1, (k, 2)) * (crop - wh)
            boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
            sample = DetDataSample(metainfo=meta)
            sample.gt_instances = InstanceData(
                bboxes=HorizontalBoxes(torch.from_numpy(boxes)),
                labels=torch.from_numpy(rng.integers(0, num_classes, k)))
        else:
            from mmseg.structures import SegDataSample
            cells = (crop + 15) // 16
            blocks = rng.integers(0, num_classes, (cells, cells))
            changed = np.where(
                rng.uniform(size=(cells, cells)) < 0.2,
                (blocks + 1) % num_classes, blocks)

            def up(b: np.ndarray) -> PixelData:
                full = b.repeat(16, 0).repeat(16, 1)[:crop, :crop]
                return PixelData(data=torch.from_numpy(full)[None])

            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg, sample.gt_ret_seg = up(blocks), up(changed)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


class Pair:
    """Models A and B of one stage that differ in one config key, start
    from the same weights and train on the same preprocessed batch."""

    def __init__(self, kind: str, args: argparse.Namespace, tmp: str):
        import torch
        from mmengine.dataset import pseudo_collate
        from mmengine.optim import build_optim_wrapper
        from mmengine.registry import DATASETS, MODELS, DefaultScope
        self.stage = 1 if kind == 'bap' else 3
        self.cfg = cfg = build_config(self.stage, args, tmp)
        self.names = ('BAP', 'GAP') if kind == 'bap' else ('NAL', 'CE')
        variants = [copy.deepcopy(cfg.model) for _ in self.names]
        if kind == 'bap':
            variants[0].head.mode, variants[1].head.mode = 'bap', 'gap'
        else:
            variants[1].decode_head.loss_decode = dict(
                type='CrossEntropyLoss', loss_name='loss_ce')
        self.device = torch.device(
            'cuda' if torch.cuda.is_available() else 'cpu')
        torch.manual_seed(args.seed)
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            self.models = [MODELS.build(v) for v in variants]
            self.models[0].init_weights()
            missing = self.models[1].load_state_dict(
                self.models[0].state_dict(), strict=False).missing_keys
            if missing:
                raise RuntimeError(f'{self.names[1]} has weights '
                                   f'{self.names[0]} lacks: {missing}')
            self.wrappers = [
                build_optim_wrapper(m, copy.deepcopy(cfg.optim_wrapper))
                for m in self.models
            ]
            if args.random_batch:
                raw = random_batch(self.stage, args,
                                   self.head(0).num_classes, cfg.crop[0])
            else:
                dataset = DATASETS.build(cfg.train_dataloader.dataset)
                raw = pseudo_collate(
                    [dataset[i % len(dataset)] for i in range(args.batch)])
        for model in self.models:
            model.to(self.device).train()
        with torch.no_grad():
            data = self.models[0].data_preprocessor(raw, True)
        self.inputs, self.samples = data['inputs'], data['data_samples']
        self.logs: List[dict] = [{}, {}]

    def head(self, i: int):
        """The head of model ``i``."""
        model = self.models[i]
        return model.head if self.stage == 1 else model.decode_head

    def train_step(self, i: int) -> None:
        """Loss, parse_losses and update_params of model ``i``."""
        model = self.models[i]
        loss, self.logs[i] = model.parse_losses(
            model.loss(self.inputs, self.samples))
        self.wrappers[i].update_params(loss)

    def head_loss(self, i: int, feats):
        """The summed losses of model ``i``'s head on ``feats``."""
        head, model = self.head(i), self.models[i]
        losses = head.loss(feats, self.samples) if self.stage == 1 else \
            head.loss(feats, self.samples, model.train_cfg)
        return model.parse_losses(losses)[0]

    def timed(self, fn: Callable[[int], object], rounds: int,
              warmup: int) -> list:
        """Measurements of ``fn(0)`` and ``fn(1)``, interleaved."""
        ms = bench.interleaved(
            {
                n: (lambda i=i: fn(i))
                for i, n in enumerate(self.names)
            }, rounds, warmup)
        return [ms[n] for n in self.names]

    def log(self, i: int, key: str) -> Optional[float]:
        """A logged value of model ``i``'s last step."""
        import torch
        value = self.logs[i].get(key)
        return None if value is None else float(
            torch.as_tensor(value).detach())


def leaves(feats):
    """Detached copies of a feature tensor (or list) that want a grad."""
    import torch
    if isinstance(feats, torch.Tensor):
        return feats.detach().clone().requires_grad_(True)
    return [leaves(f) for f in feats]


def a_vs_b(kind: str, args: argparse.Namespace, tmp: str,
           notes: List[str]) -> List[Row]:
    """Rows of BAP against GAP (``kind`` 'bap') or NAL against CE
    ('nal')."""
    import torch
    pair = Pair(kind, args, tmp)
    warmup = max(1, args.warmup)
    step = pair.timed(pair.train_step, args.steps, warmup)
    with torch.no_grad():
        feats = pair.models[0].extract_feat(pair.inputs)

    def head_fwd(i: int) -> None:
        with torch.no_grad():
            pair.head_loss(i, feats)

    def head_fwd_bwd(i: int) -> None:
        pair.head_loss(i, leaves(feats)).backward()
        pair.head(i).zero_grad(set_to_none=True)

    head_rounds = args.head_steps or 5 * args.steps
    fwd = pair.timed(head_fwd, head_rounds, warmup)
    fwd_bwd = pair.timed(head_fwd_bwd, head_rounds, warmup)
    peak = [
        bench.mib(
            bench.peak_allocated(
                bench.profile_calls(
                    lambda i=i: pair.train_step(i),
                    args.mem_steps,
                    memory=True), pair.device)) for i in range(2)
    ]
    saved = [
        bench.mib(
            bench.saved_tensor_bytes(
                lambda i=i: pair.models[i].loss(pair.inputs, pair.samples),
                pair.models[i])) for i in range(2)
    ]
    saved_head = [
        bench.mib(
            bench.saved_tensor_bytes(
                lambda i=i: pair.head_loss(i, leaves(feats)), pair.head(i)))
        for i in range(2)
    ]

    name = f'stage {pair.stage} {pair.names[0]} | {pair.names[1]}'
    batch = 'random batch' if args.random_batch else 'a batch of the set'
    if pair.stage == 1:
        batch += ', boxes/image ' + '/'.join(
            str(len(s.gt_instances)) for s in pair.samples)
    notes.append(f'{name}: {setting(pair.cfg, args)} ({batch}), '
                 f'{args.steps} rounds after {warmup}, head alone '
                 f'{head_rounds}')

    def timing(label: str, values: list) -> Row:
        a, b = values
        return (name, f'{label}, ms median (IQR)', bench.median_iqr(a),
                bench.median_iqr(b), f'{(a.median - b.median) * 1e3:.1f}',
                f'{a.median / b.median:.3f}',
                f'{bench.paired_ratio(a, b):.3f}')

    def memory(label: str, values: list) -> Row:
        a, b = values
        return (name, f'{label}, MiB', f'{a:.1f}', f'{b:.1f}', f'{a - b:.1f}',
                f'{a / max(b, 1e-9):.3f}', None)

    def two(label: str, a: object, b: object) -> Row:
        return (name, label, a, b, None, None, None)

    a, b = step
    rows = [
        timing('train step (fwd+bwd+SGD)', step),
        (name, 'train step, ms mean', f'{a.mean * 1e3:.1f}',
         f'{b.mean * 1e3:.1f}', f'{(a.mean - b.mean) * 1e3:.1f}',
         f'{a.mean / b.mean:.3f}', None),
        timing('head loss fwd', fwd),
        timing('head loss fwd+bwd', fwd_bwd),
        two('head fwd+bwd / train step',
            *(f'{h.median / s.median:.1%}' for h, s in zip(fwd_bwd, step))),
        memory('peak step memory', peak),
        memory('saved for backward, model', saved),
        memory('saved for backward, head', saved_head),
        two('loss of the last step',
            *(f'{pair.log(i, "loss"):.4f}' for i in range(2))),
    ]
    fallback = pair.log(0, 'fallback_share')
    if fallback is not None:
        rows.append(
            two('share of images where BAP falls back to GAP',
                f'{fallback:.2f}', None))
    return rows


# -------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None) -> List[Row]:
    """Measure, print the table, return its rows."""
    args = parse_args(argv)
    import torch
    from mmengine.logging import MMLogger

    from bana_mm.apis.common import ensure_default_dataset
    if args.threads:
        torch.set_num_threads(args.threads)
    # a quiet current logger: no per-parameter init / paramwise INFO lines
    MMLogger.get_instance('train_step_cost', log_level='WARNING')
    import bana_mm.det  # noqa: F401
    import bana_mm.seg  # noqa: F401
    args.data_root = args.data_root or \
        bench.shared_dataset('coco128_voc20') or \
        ensure_default_dataset(
            osp.join(tempfile.gettempdir(), 'bana_mm_synthetic'))
    notes = [bench.machine_line(), f'image set {args.data_root}']
    rows: List[Row] = []
    with tempfile.TemporaryDirectory(prefix='train_step_cost_') as tmp:
        if 'runner' in args.compare:
            for stage in args.stages:
                rows += runner_vs_bare(stage, args, tmp, notes)
        for kind in ('bap', 'nal'):
            if kind in args.compare:
                rows += a_vs_b(kind, args, tmp, notes)
    notes.append(f'load at the end {bench.load_average()}')
    print('\n'.join(notes))
    print(
        bench.format_table(
            ('comparison', 'row', 'A', 'B', 'A - B', 'A/B', 'paired'),
            rows,
            left=2))
    return rows


if __name__ == '__main__':
    main()
