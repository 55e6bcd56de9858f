"""Time one stage-1 training step with the BAP head against the GAP head.

Both models are built from the same config through mmdet's registry
(``BAPClassifier`` = VGG16LargeFOV backbone + ``BAPHead``), differ only in
``head.mode`` ('bap' vs 'gap'), start from identical weights and see the same
preprocessed batch at the same crop. A step is what mmengine's train loop
does after data preprocessing: ``model.loss`` (forward), ``parse_losses``,
then ``OptimWrapper.update_params`` (backward, gradient clipping if the
config has it, SGD step with the config's paramwise lrs, zero_grad).

The two modes are interleaved round by round, and the order inside a round
alternates (BAP GAP, GAP BAP, ...) so that thermal/frequency drift, cache
effects and load from other processes hit both modes alike. Warm-up rounds
are not timed. Each row prints mean ± std, median and min per mode, the ratio
of the means and the median of the per-round BAP/GAP ratios ("paired", the
figure least sensitive to a busy machine).

Also measured, on features precomputed once by the backbone (so only the
head differs): ``head.loss`` forward, and forward + backward to the
features, i.e. BAP pooling (queries, attention, weighted RoIAlign, background
terms) against plain GAP pooling.

Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated`` over a step
(reset before each step), minus what was allocated before the step. On CPU
there is no per-step allocator high-water mark, and ``ru_maxrss`` is
monotonic over the process so it cannot separate interleaved modes; instead a
background thread samples the resident set size from ``/proc/self/statm``
every 0.5 ms during dedicated (untimed) steps, and the peak RSS delta over
the RSS before the step is reported (glibc ``malloc_trim(0)`` first, so the
baseline does not hold memory freed by the previous step). ``ru_maxrss`` of
the whole process is printed too. The sampler is off while timing. On every
device the exact bytes autograd saves for backward (distinct storages,
parameters excluded) are reported for the whole model and for the head
alone: noise-free activation memory, the figure to compare BAP and GAP by.

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
import os
import os.path as osp
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CONFIG = osp.join(REPO, 'configs/bana/bap_vgg16_tiny.py')
FULL_CONFIG = osp.join(REPO, 'configs/bana/bap_vgg16_voc.py')
MODES = ('bap', 'gap')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark a training step of the BAP vs the GAP head.')
    parser.add_argument('--full', action='store_true',
                        help='use configs/bana/bap_vgg16_voc.py (full width, '
                        '321 crop) instead of the tiny preset')
    parser.add_argument('--config', help='any other stage-1 config')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--crop', type=int, default=None,
                        help='square crop size (default: the config\'s, '
                        '161 tiny / 321 full)')
    parser.add_argument('--iters', type=int, default=10,
                        help='timed rounds (each runs both modes once)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed rounds first')
    parser.add_argument('--width-mult', type=float, default=None,
                        help='backbone width multiplier (default: the '
                        'config\'s, 0.25 tiny / 1.0 full)')
    parser.add_argument('--device', default=None,
                        help='default: cuda if available, else cpu')
    parser.add_argument('--data', choices=('random', 'dataset'),
                        default='random',
                        help='random: uniform noise images with random '
                        'boxes; dataset: one batch through the config\'s '
                        'train pipeline')
    parser.add_argument('--data-root',
                        help='VOC-layout folder for --data dataset (default: '
                        'generate a small synthetic one in a temp dir)')
    parser.add_argument('--boxes', type=int, default=3,
                        help='max boxes per image for --data random')
    parser.add_argument('--head-iters', type=int, default=None,
                        help='rounds of the head-only timing (default: '
                        '5 x --iters)')
    parser.add_argument('--mem-iters', type=int, default=2,
                        help='untimed rounds with the memory sampler')
    parser.add_argument('--threads', type=int, default=None,
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
        inputs.append(torch.from_numpy(
            rng.integers(0, 256, (3, size, size), dtype=np.uint8)))
        k = int(rng.integers(1, args.boxes + 1))
        wh = rng.uniform(0.1, 0.5, (k, 2)) * size
        xy = rng.uniform(0, 1, (k, 2)) * (size - wh)
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            pad_shape=(size, size), scale_factor=(1.0, 1.0)))
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
        from bana_mm.datagen import SYNTHETIC_CLASSES, \
            generate_synthetic_dataset
        tmp = tempfile.TemporaryDirectory(prefix='bap_vs_gap_')
        generate_synthetic_dataset(tmp.name, num_train=args.batch_size,
                                   num_val=1, seed=args.seed)
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
# Measurement helpers
# --------------------------------------------------------------------------- #
class Timer:

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == 'cuda'

    def __call__(self, fn: Callable[[], object]) -> float:
        """Wall time of ``fn()`` in ms (device-synchronised)."""
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if self.cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1e3


def _rss_bytes() -> Optional[int]:
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        return None


class PeakRSS:
    """Peak resident set size during a block, sampled by a thread."""

    def __init__(self, interval: float = 5e-4) -> None:
        self.interval = interval

    def __enter__(self) -> 'PeakRSS':
        self.before = _rss_bytes()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes()
            if rss is not None and rss > self.peak:
                self.peak = rss
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        rss = _rss_bytes()
        if rss is not None and rss > self.peak:
            self.peak = rss

    @property
    def delta(self) -> int:
        return self.peak - self.before


def _malloc_trim() -> None:
    """Give freed heap memory back to the OS (glibc), so that RSS before a
    step is not inflated by what the previous step freed."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def saved_tensor_bytes(forward: Callable[[], object],
                       module: torch.nn.Module) -> int:
    """Bytes of the distinct storages autograd saves for backward during
    ``forward()``: the activation memory a step holds at the end of the
    forward pass (``module``'s parameters and buffers excluded). Exact and
    noise-free, unlike RSS; it ignores transient buffers freed within the
    forward pass and the gradients of the backward pass."""
    storages: Dict[int, int] = {}
    params = {t.untyped_storage().data_ptr()
              for t in list(module.parameters()) + list(module.buffers())}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(n for ptr, n in storages.items() if ptr not in params)


def measure_step_memory(step: Callable[[], object],
                        device: torch.device) -> Tuple[int, int]:
    """(peak bytes over the state before the step, peak absolute bytes)."""
    if device.type == 'cuda':
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated(device)
        return peak - before, peak
    _malloc_trim()
    with PeakRSS() as probe:
        step()
    return probe.delta, probe.peak


def _loadavg() -> str:
    try:
        return '/'.join(f'{x:.2f}' for x in os.getloadavg())
    except OSError:
        return 'n/a'


def mean_std(values: List[float]) -> Tuple[float, float]:
    return (statistics.fmean(values),
            statistics.stdev(values) if len(values) > 1 else 0.0)


def mib(n: float) -> str:
    return f'{n / 2**20:8.1f} MiB'


def interleaved(rounds: int, run: Callable[[str], float]
                ) -> Dict[str, List[float]]:
    """Run both modes ``rounds`` times, alternating which goes first."""
    out: Dict[str, List[float]] = {m: [] for m in MODES}
    for i in range(rounds):
        for mode in (MODES if i % 2 == 0 else MODES[::-1]):
            out[mode].append(run(mode))
    return out


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #
def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    torch.manual_seed(args.seed)
    # A quiet current logger: no per-parameter init/paramwise INFO lines.
    MMLogger.get_instance('bap_vs_gap_step', log_level='WARNING')
    init_default_scope('mmdet')
    import bana_mm.det  # noqa: F401  (registers BAPClassifier, datasets)

    cfg = load_config(args)
    args.num_classes = head_num_classes(cfg)
    models = build_models(cfg, device)
    wrappers = {m: build_optim_wrapper(models[m], copy.deepcopy(
        cfg.optim_wrapper)) for m in MODES}

    raw = dataset_batch(cfg, args) if args.data == 'dataset' \
        else random_batch(args)
    # Same preprocessed batch for both modes (the preprocessors are equal).
    with torch.no_grad():
        data = models['bap'].data_preprocessor(raw, True)
    inputs, samples = data['inputs'], data['data_samples']

    def train_step(mode: str) -> dict:
        model, wrapper = models[mode], wrappers[mode]
        losses = model.loss(inputs, samples)
        loss, log_vars = model.parse_losses(losses)
        wrapper.update_params(loss)
        return log_vars

    timer = Timer(device)
    last_vars: Dict[str, dict] = {}

    def timed_step(mode: str) -> float:
        return timer(lambda: last_vars.__setitem__(mode, train_step(mode)))

    load_before = _loadavg()
    t0 = time.perf_counter()
    interleaved(args.warmup, timed_step)
    step_ms = interleaved(args.iters, timed_step)

    # Head alone, on features precomputed once by a backbone (same for both).
    with torch.no_grad():
        feats = models['bap'].extract_feat(inputs).detach()
    heads = {m: models[m].head for m in MODES}

    def head_fwd(mode: str) -> float:
        with torch.no_grad():
            return timer(lambda: heads[mode].loss(feats, samples))

    def head_fwd_bwd(mode: str) -> float:
        leaf = feats.clone().requires_grad_(True)

        def run():
            heads[mode].loss(leaf, samples)['loss_cls'].backward()
        ms = timer(run)
        heads[mode].zero_grad(set_to_none=True)
        return ms

    head_iters = args.head_iters or 5 * args.iters
    interleaved(max(1, args.warmup), head_fwd_bwd)
    head_fwd_ms = interleaved(head_iters, head_fwd)
    head_bwd_ms = interleaved(head_iters, head_fwd_bwd)

    # Memory, in separate untimed steps (the CPU sampler costs time).
    mem: Dict[str, List[Tuple[int, int]]] = interleaved(
        args.mem_iters, lambda m: measure_step_memory(
            lambda: train_step(m), device))
    saved = {m: saved_tensor_bytes(
        lambda: models[m].loss(inputs, samples), models[m]) for m in MODES}
    leaf = feats.clone().requires_grad_(True)
    saved_head = {m: saved_tensor_bytes(
        lambda: heads[m].loss(leaf, samples), heads[m]) for m in MODES}
    for model in models.values():
        model.zero_grad(set_to_none=True)
    total_s = time.perf_counter() - t0
    load_after = _loadavg()

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
    print(f'  load avg   : {load_before} before, {load_after} after (other '
          'processes on the machine inflate the std)')
    fallback = last_vars['bap'].get('fallback_share')
    if fallback is not None:
        print(f'  BAP fallback-to-GAP share in the batch: {fallback:.2f}')
    print()
    print(f'  {"":26s}{"BAP mean ± std":>20s}{"GAP mean ± std":>20s}'
          f'{"ratio":>8s}{"paired":>8s}')

    def row(name: str, per_mode: Dict[str, List[float]]) -> None:
        (mb, sb), (mg, sg) = (mean_std(per_mode[m]) for m in MODES)
        paired = statistics.median(
            b / g for b, g in zip(per_mode['bap'], per_mode['gap']))
        print(f'  {name:26s}{mb:10.2f} ±{sb:6.2f} ms{mg:10.2f} ±{sg:6.2f} ms'
              f'{mb / mg:8.3f}{paired:8.3f}')
        print(f'  {"  median (min)":26s}'
              f'{statistics.median(per_mode["bap"]):10.2f} '
              f'({min(per_mode["bap"]):6.2f}) '
              f'{statistics.median(per_mode["gap"]):10.2f} '
              f'({min(per_mode["gap"]):6.2f})')
    row('train step (fwd+bwd+SGD)', step_ms)
    row('head.loss fwd', head_fwd_ms)
    row('head.loss fwd+bwd', head_bwd_ms)
    share = {m: statistics.fmean(head_bwd_ms[m]) / statistics.fmean(
        step_ms[m]) for m in MODES}
    print(f'  {"head fwd+bwd / step":26s}{share["bap"]:19.1%} '
          f'{share["gap"]:19.1%}')
    delta = {m: max(d for d, _ in mem[m]) for m in MODES}
    peak = {m: max(p for _, p in mem[m]) for m in MODES}
    what = ('CUDA max_memory_allocated' if device.type == 'cuda'
            else 'RSS (sampled /proc/self/statm)')
    print(f'  {"peak step memory delta":26s}{mib(delta["bap"]):>20s}'
          f'{mib(delta["gap"]):>20s}'
          f'{delta["bap"] / max(delta["gap"], 1):8.3f}')
    print(f'  {"peak absolute":26s}{mib(peak["bap"]):>20s}'
          f'{mib(peak["gap"]):>20s}')
    for name, values in (('saved for backward, model', saved),
                         ('saved for backward, head', saved_head)):
        print(f'  {name:26s}{mib(values["bap"]):>20s}'
              f'{mib(values["gap"]):>20s}'
              f'{values["bap"] / max(values["gap"], 1):8.3f}')
    print(f'  memory: {what}, max over {args.mem_iters} untimed steps per '
          'mode, delta = peak - before the step'
          + ('' if device.type == 'cuda' else ' (after malloc_trim)')
          + '; "saved for backward" = distinct storages autograd keeps '
          'after the forward pass (exact)')
    if device.type != 'cuda':
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f'  process ru_maxrss (both modes, whole run): {mib(maxrss)}')
    print('  final losses: ' + ', '.join(
        f'{m} {last_vars[m]["loss"]:.4f}' for m in MODES))
    print(f'  measured in {total_s:.1f} s')
    return dict(step_ms=step_ms, head_fwd_ms=head_fwd_ms,
                head_fwd_bwd_ms=head_bwd_ms, mem=mem, saved=saved,
                saved_head=saved_head)


if __name__ == '__main__':
    main()
