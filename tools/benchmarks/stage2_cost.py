"""How fast is stage 2 per image size, and where does the time go.

One table: the seconds per image of each part of stage 2, its share of the
parts' sum and its peak memory, for two kinds of input.

Synthetic, per image size (``--sizes``; none: skip): a random image
(``--image noise``: i.i.d. pixels, the DenseCRF's worst case; ``smooth``:
smooth random colours, closer to a photo), random non-negative features of
``1024 x --width-mult`` channels at output stride 8, and three boxes of two
classes covering about a third of the image. Each part runs in a fresh
process, ``--repeats`` times after ``--warmup`` untimed runs (median and
IQR); its peak memory is the process's peak resident size during the part
(Linux ``VmHWM`` after a ``clear_refs`` reset) above what it held before:

  backbone   the VGG-16 LargeFOV forward that makes the features
  unaries    prepare_pseudo_labels: background query, u0 and its threshold,
             CAMs, the CRF input (per --modes)
  DenseCRF   pydensecrf on that input, 10 mean-field iterations
  retrieval  prototypes and Yret, eqs. 8-9 (per --modes)

The backbone and DenseCRF do not depend on ``upsample``: they are measured
once per size and shown in the rows of each mode. "sum" adds the parts (its
peak: the largest part's).

An image set (``--images``; 0: skip) through the code of
``tools/gen_pseudo_labels.py``: the first images of ``--data-root``
(default ``../shared/data/coco128_voc20`` if present, else the embedded
synthetic set), resized so that the longer side is ``--max-side`` (boxes
alike; 0 keeps them), the stage-1 model of ``--config`` (random weights
unless ``--checkpoint``: the time does not depend on them), for every
``--modes`` x ``--workers``. Mean seconds per image (IQR over the images);
``network`` includes loading the image; ``wall`` is the elapsed time of the
run per image, below the sum when workers run DenseCRF beside the next
image's network (its share: wall / sum).

Whole images, per size (``--end-to-end``; none: skip): the code of
``tools/gen_pseudo_labels.py`` (``--end-to-end-workers``, default 0: all
in one process) on one
synthetic image file of each size (``--image``; three boxes of two
classes) with the stage-1 model of ``--config`` at random weights, for each
``--max-pixels`` (0: labelled at its own size; such runs of images above
``--uncapped-limit`` pixels are left out: they need > 8 GB). One fresh
process each; ``wall`` and ``CPU`` seconds (user + system, workers
included) of the run, both also per megapixel of the image, and the
process's peak resident size (``VmHWM``, everything it held, the model
included; with workers, plus the largest worker's peak: an upper bound of
what they held at once). The parts'
means come from the run: ``network`` (image loading, downscaling and
backbone), ``unaries``, ``DenseCRF``, ``retrieval``, ``write`` (labels
back to the original size, PNGs).

CPU. On a machine shared with other jobs the times are upper bounds (the
header gives the load); memory does not depend on load; CPU seconds depend
on it far less than wall seconds.

examples:
  python tools/benchmarks/stage2_cost.py --quick
  python tools/benchmarks/stage2_cost.py --sizes voc --images 0
  python tools/benchmarks/stage2_cost.py --sizes --images 10 --workers 1 2
  python tools/benchmarks/stage2_cost.py --sizes --images 0 --threads 1 \
      --end-to-end 640x480 2000x1500 4000x3000 6000x4000 --image smooth
  python tools/benchmarks/stage2_cost.py  # every size: ~30 min on 2 cores
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from bana_mm.core.pseudo_labels import DEFAULT_MAX_PIXELS
from bana_mm.utils.benchmark import (format_table, from_times, load_average,
                                     machine_line, mib, parse_with_quick,
                                     peak_rss_bytes, reset_peak_rss, rss_bytes,
                                     shared_dataset)

#: Named image sizes, (width, height).
SIZES: Dict[str, Tuple[int, int]] = {
    'voc': (500, 375),
    'coco': (640, 480),
    '2048x1024': (2048, 1024),
    '4000x3000': (4000, 3000),
}
PARTS = ('backbone', 'unaries', 'densecrf', 'retrieval')
SHOWN = dict(densecrf='DenseCRF')
#: (key of the stage-2 report, part) of a run over an image set.
RUN_PARTS = (('network', 'network'), ('unary', 'unaries'), ('crf', 'DenseCRF'),
             ('retrieval', 'retrieval'))
#: Parts whose cost depends on ``upsample``.
PER_MODE = ('unaries', 'retrieval')
QUICK = dict(
    sizes=['160x120'],
    images=2,
    max_side=[160],
    workers=[0],
    width_mult=0.25,
    end_to_end=['200x150'],
    max_pixels=[10000, 0])
#: A result row: input, upsample, workers, part, seconds, IQR, peak MiB.
Row = Tuple[str, str, Optional[int], str, Optional[float], Optional[float],
            Optional[float]]


def parse_size(name: str) -> Tuple[int, int]:
    """``voc``, ``coco``, ... or ``WIDTHxHEIGHT``."""
    if name in SIZES:
        return SIZES[name]
    try:
        width, height = (int(v) for v in name.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{name!r}: one of {", ".join(SIZES)} or WIDTHxHEIGHT') from None
    return width, height


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The options, with ``--quick`` defaults if asked."""
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog=__doc__[__doc__.index('\n') + 1:],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--sizes',
        nargs='*',
        default=list(SIZES),
        help=f'synthetic image sizes: {", ".join(SIZES)} or WIDTHxHEIGHT')
    parser.add_argument(
        '--parts',
        nargs='+',
        default=list(PARTS),
        choices=PARTS,
        help='synthetic parts to measure')
    parser.add_argument(
        '--modes',
        nargs='+',
        default=['features', 'maps'],
        choices=['features', 'maps'],
        help='upsample modes (features: the authors\' order)')
    parser.add_argument(
        '--image',
        default='noise',
        choices=['noise', 'smooth'],
        help='synthetic image: i.i.d. pixels or smooth colours')
    parser.add_argument(
        '--repeats', type=int, default=1, help='timed runs of each part')
    parser.add_argument(
        '--warmup', type=int, default=0, help='untimed runs first')
    parser.add_argument(
        '--width-mult',
        type=float,
        default=1.0,
        help='backbone width; features have 1024 x this channels')
    parser.add_argument(
        '--images',
        type=int,
        default=12,
        help='images of the image set (0: no image-set rows)')
    parser.add_argument(
        '--data-root',
        default=None,
        help='VOC-layout image set (default: coco128_voc20 or synthetic)')
    parser.add_argument(
        '--max-side',
        type=int,
        nargs='+',
        default=[500],
        help='longer image side(s) of the set; 0 keeps the images')
    parser.add_argument(
        '--workers',
        type=int,
        nargs='+',
        default=[1, 2],
        help='stage-2 worker processes (0: inline)')
    parser.add_argument(
        '--config',
        default=osp.join(REPO, 'configs', 'bana', 'bap_vgg16_voc.py'),
        help='stage-1 config of the image-set rows')
    parser.add_argument(
        '--checkpoint', default=None, help='its weights (default: random)')
    parser.add_argument(
        '--threads', type=int, default=None, help='torch threads')
    parser.add_argument(
        '--end-to-end',
        nargs='*',
        default=[],
        metavar='SIZE',
        help='whole-image rows: image sizes (as --sizes) through the '
        "tool's code, one process each")
    parser.add_argument(
        '--max-pixels',
        type=int,
        nargs='+',
        default=[DEFAULT_MAX_PIXELS, 0],
        help='max_pixels of the whole-image rows (0: off)')
    parser.add_argument(
        '--end-to-end-workers',
        type=int,
        default=0,
        help='stage-2 worker processes of the whole-image rows')
    parser.add_argument(
        '--uncapped-limit',
        type=int,
        default=4_000_000,
        help='whole-image rows with max_pixels 0 only up to this many '
        'pixels')
    parser.add_argument(
        '--one-image',
        nargs=2,
        metavar=('SIZE', 'MAX_PIXELS'),
        help=argparse.SUPPRESS)  # one whole image in this process, JSON out
    parser.add_argument(
        '--one',
        nargs=3,
        metavar=('SIZE', 'MODE', 'PART'),
        help=argparse.SUPPRESS)  # one part in this process, JSON out
    args = parse_with_quick(parser, QUICK, argv)
    for size in args.sizes + args.end_to_end:
        try:
            parse_size(size)
        except argparse.ArgumentTypeError as err:
            parser.error(str(err))
    if args.repeats < 1 or args.warmup < 0 or args.images < 0:
        parser.error('--repeats must be >= 1, --warmup and --images >= 0')
    return args


# --------------------------------------------------------- synthetic parts
def part_call(part: str, mode: str, size: str,
              args: argparse.Namespace) -> Callable[[], object]:
    """The call that runs ``part`` on synthetic inputs of ``size``, with
    its inputs (and what earlier parts would have made) built here."""
    import math

    import numpy as np
    import torch

    from bana_mm.core.baselines import box_baseline
    from bana_mm.core.crf import dense_crf
    from bana_mm.core.pseudo_labels import (PseudoLabelConfig,
                                            prepare_pseudo_labels)
    from bana_mm.core.resample import BilinearResampler
    from bana_mm.core.retrieval import retrieval_maps

    width, height = parse_size(size)
    dim = max(1, int(1024 * args.width_mult))
    torch.manual_seed(0)
    feat = torch.randn(dim, math.ceil(height / 8), math.ceil(width / 8))
    feat = feat.relu_()
    weights = torch.randn(21, dim) * 0.05
    W, H = width, height
    boxes = [[0.1 * W, 0.2 * H, 0.45 * W, 0.8 * H],
             [0.4 * W, 0.1 * H, 0.7 * W, 0.5 * H],
             [0.6 * W, 0.5 * H, 0.95 * W, 0.95 * H]]
    labels = [4, 14, 4]
    image = synthetic_image(W, H, args.image)
    cfg = PseudoLabelConfig(upsample=mode)
    if part == 'unaries':
        return lambda: prepare_pseudo_labels(
            image, feat, weights, boxes, labels, cfg=cfg)
    if part == 'densecrf':
        probs = prepare_pseudo_labels(
            image, feat, weights, boxes, labels, cfg=cfg).probs.numpy()
        return lambda: dense_crf(image, probs)
    if part == 'retrieval':
        ycrf = box_baseline(np.asarray(boxes, np.float32), labels, (H, W))
        resampler = BilinearResampler(feat.shape[1:], (H, W), (H, W),
                                      cfg.align_corners)
        norms = resampler.feature_norms(feat) if mode == 'features' else None
        return lambda: retrieval_maps(
            feat,
            ycrf,
            weights,
            boxes,
            labels,
            upsample=mode,
            resampler=resampler,
            norms=norms)
    from mmengine.registry import MODELS

    import bana_mm  # noqa: F401  (registers VGG16LargeFOV)
    model = MODELS.build(
        dict(type='VGG16LargeFOV', width_mult=args.width_mult)).eval()
    x = torch.randn(1, 3, H, W)
    return lambda: model(x)


def measure_part(args: argparse.Namespace) -> dict:
    """Seconds (median, IQR) and peak resident MiB above the start of the
    part ``args.one`` = (size, mode, part), in this process."""
    import torch
    size, mode, part = args.one
    call = part_call(part, mode, size, args)
    times: List[float] = []
    peaks: List[int] = []
    with torch.no_grad():
        for i in range(args.warmup + args.repeats):
            reset_peak_rss()
            before = rss_bytes()
            start = time.perf_counter()
            call()
            seconds = time.perf_counter() - start
            if i >= args.warmup:
                times.append(seconds)
                peaks.append(max(0, peak_rss_bytes() - before))
    m = from_times(times, part)
    return dict(seconds=m.median, iqr=m.iqr, peak_mib=mib(max(peaks)))


def synthetic_rows(args: argparse.Namespace, failures: List[str]) -> List[Row]:
    """Every part of every size in a fresh process of this script."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (REPO, os.environ.get('PYTHONPATH')) if p))
    common = [
        '--repeats',
        str(args.repeats), '--warmup',
        str(args.warmup), '--width-mult',
        str(args.width_mult), '--image', args.image
    ] + (['--threads', str(args.threads)] if args.threads else [])
    rows: List[Row] = []
    for size in args.sizes:
        width, height = parse_size(size)
        label = f'{size} {width}x{height}' if size in SIZES else size
        found: Dict[Tuple[str, str], dict] = {}
        for part in args.parts:
            for mode in (args.modes if part in PER_MODE else args.modes[:1]):
                out = subprocess.run(
                    [sys.executable, __file__, '--one', size, mode, part] +
                    common,
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                    env=env)
                if out.returncode:
                    tail = (out.stderr.strip().splitlines() or ['killed?'])
                    failures.append(f'{label} {mode} {part}: exit '
                                    f'{out.returncode}: {tail[-1]}')
                    continue
                found[part,
                      mode] = json.loads(out.stdout.strip().splitlines()[-1])
        for mode in args.modes:
            for part in args.parts:
                r = found.get(
                    (part, mode if part in PER_MODE else args.modes[0]))
                rows.append(
                    (label, mode, None, SHOWN.get(part, part),
                     *((r['seconds'], r['iqr'], r['peak_mib']) if r else
                       (None, ) * 3)))
    return rows


# ------------------------------------------------------------ an image set
def resized_copy(root: str, split: str, count: int, max_side: int,
                 out: str) -> str:
    """The first ``count`` images of the VOC-layout ``root``'s ``split``,
    scaled so that the longer side is at most ``max_side`` (boxes alike),
    as a VOC-layout folder ``out``."""
    import shutil
    import xml.etree.ElementTree as ET

    import cv2
    with open(osp.join(root, split)) as f:
        ids = [line.strip() for line in f if line.strip()][:count]
    for sub in ('JPEGImages', 'Annotations', 'ImageSets/Segmentation'):
        os.makedirs(osp.join(out, sub), exist_ok=True)
    for img_id in ids:
        image = cv2.imread(osp.join(root, 'JPEGImages', f'{img_id}.jpg'))
        scale = min(1.0, max_side / max(image.shape[:2]))
        image = cv2.resize(
            image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.imwrite(osp.join(out, 'JPEGImages', f'{img_id}.jpg'), image)
        tree = ET.parse(osp.join(root, 'Annotations', f'{img_id}.xml'))
        tree.find('size/height').text = str(image.shape[0])
        tree.find('size/width').text = str(image.shape[1])
        for key in ('xmin', 'ymin', 'xmax', 'ymax'):
            limit = image.shape[1] if key[0] == 'x' else image.shape[0]
            for node in tree.getroot().iter(key):
                value = max(1, round(float(node.text) * scale))
                node.text = str(min(value, limit))
        tree.write(osp.join(out, 'Annotations', f'{img_id}.xml'))
    with open(osp.join(out, 'ImageSets/Segmentation/train.txt'), 'w') as f:
        f.write('\n'.join(ids) + '\n')
    if osp.isfile(osp.join(root, 'class_names.txt')):
        shutil.copy(osp.join(root, 'class_names.txt'), out)
    return out


def run_rows(model, dataset, label: str, classes: Sequence[str],
             args: argparse.Namespace, tmp: str) -> List[Row]:
    """Stage 2 over ``dataset`` per mode and worker count: the mean time
    of each part per image, and the wall time per image."""
    from bana_mm.core.pseudo_labels import PseudoLabelConfig
    from bana_mm.det.pseudo_label_runner import (Stage2Options,
                                                 generate_label_files,
                                                 merge_reports)
    rows: List[Row] = []
    for mode in args.modes:
        for workers in args.workers:
            options = Stage2Options(
                workers=workers,
                num_vis=0,
                evaluate=False,
                labels=PseudoLabelConfig(upsample=mode))
            out = osp.join(tmp, f'labels_{mode}_{workers}')
            with contextlib.redirect_stdout(sys.stderr):  # progress bar
                report = generate_label_files(model, dataset, out, options,
                                              classes)
            for key, part in RUN_PARTS:
                m = from_times(report[key], part) if report[key] else None
                rows.append(
                    (label, mode, workers, part, None if m is None else m.mean,
                     None if m is None else m.iqr, None))
            wall = merge_reports([report], workers)['seconds_per_image']
            rows.append((label, mode, workers, 'wall', wall, None, None))
    return rows


def dataset_rows(args: argparse.Namespace) -> Tuple[List[Row], str]:
    """Stage 2 over the first ``--images`` of an image set at each
    ``--max-side`` (:func:`run_rows`); also a line naming the set."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    from bana_mm.apis.common import VOCLayout, ensure_default_dataset
    from bana_mm.det.pseudo_label_data import build_label_dataset

    root = args.data_root or shared_dataset('coco128_voc20') or \
        ensure_default_dataset(
            osp.join(tempfile.gettempdir(), 'bana_mm_synthetic'))
    layout = VOCLayout.inspect(root)
    cfg = Config.fromfile(args.config)
    cfg.model.backbone.width_mult = args.width_mult
    cfg.model.head.update(
        in_channels=max(1, int(1024 * args.width_mult)),
        num_classes=len(layout.classes))
    with DefaultScope.overwrite_default_scope('mmdet'):
        import bana_mm.det  # noqa: F401
        model = MODELS.build(cfg.model)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    rows: List[Row] = []
    for max_side in args.max_side:
        with tempfile.TemporaryDirectory(prefix='stage2_cost_') as tmp:
            data = root if not max_side else resized_copy(
                root, layout.train_split, args.images, max_side,
                osp.join(tmp, 'data'))
            cfg.train_dataloader.dataset.update(
                data_root=data.rstrip('/') + '/',
                ann_file=VOCLayout.inspect(data).train_split,
                metainfo=dict(classes=layout.classes))
            dataset = build_label_dataset(cfg)
            if len(dataset) > args.images:
                dataset = dataset.get_subset(args.images)
            infos = [dataset.get_data_info(i) for i in range(len(dataset))]
            kpx = sum(i['height'] * i['width'] for i in infos) / len(infos)
            label = (f'{osp.basename(root.rstrip("/"))} x{len(infos)} '
                     f'{"<=" + str(max_side) if max_side else "native"} '
                     f'({kpx / 1e3:.0f} kpx)')
            rows += run_rows(model, dataset, label, layout.classes, args, tmp)
    return rows, f'image set {root} (mean size in the input column)'


# -------------------------------------------------------- whole images
#: Classes of the whole-image rows' one-image data set.
WHOLE_CLASSES = ('cat', 'dog')
#: Parts of a whole-image row: (key of the stage-2 report, column).
WHOLE_PARTS = dict(
    network='network',
    unary='unaries',
    crf='DenseCRF',
    retrieval='retrieval',
    write='write')


def synthetic_image(width: int, height: int, kind: str):
    """(H, W, 3) uint8: i.i.d. noise or smooth random colours."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(0)
    if kind == 'noise':
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3))
    return cv2.resize(
        small.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)


def one_image_set(size: str, kind: str, out: str) -> str:
    """A VOC-layout folder ``out`` with one ``size`` image and three boxes
    of two classes covering about a third of it."""
    import xml.etree.ElementTree as ET

    import cv2
    width, height = parse_size(size)
    for sub in ('JPEGImages', 'Annotations', 'ImageSets/Segmentation'):
        os.makedirs(osp.join(out, sub), exist_ok=True)
    cv2.imwrite(
        osp.join(out, 'JPEGImages', 'image.jpg'),
        synthetic_image(width, height, kind)[..., ::-1],
        [cv2.IMWRITE_JPEG_QUALITY, 95])
    root = ET.Element('annotation')
    ET.SubElement(root, 'filename').text = 'image.jpg'
    node = ET.SubElement(root, 'size')
    for key, value in (('width', width), ('height', height), ('depth', 3)):
        ET.SubElement(node, key).text = str(value)
    W, H = width, height
    for name, box in (('cat', (0.1 * W, 0.2 * H, 0.45 * W, 0.8 * H)),
                      ('dog', (0.4 * W, 0.1 * H, 0.7 * W, 0.5 * H)),
                      ('cat', (0.6 * W, 0.5 * H, 0.95 * W, 0.95 * H))):
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = name
        ET.SubElement(obj, 'difficult').text = '0'
        bndbox = ET.SubElement(obj, 'bndbox')
        for key, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), box):
            ET.SubElement(bndbox, key).text = str(max(1, round(value)))
    ET.ElementTree(root).write(osp.join(out, 'Annotations', 'image.xml'))
    with open(osp.join(out, 'ImageSets/Segmentation/train.txt'), 'w') as f:
        f.write('image\n')
    return out


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for
    children so far."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def measure_whole_image(args: argparse.Namespace) -> dict:
    """Stage 2 of one synthetic image of ``args.one_image`` = (size,
    max_pixels) in this process: seconds, CPU seconds, peak RSS, parts."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from bana_mm.core.pseudo_labels import PseudoLabelConfig
    from bana_mm.det.pseudo_label_data import build_label_dataset
    from bana_mm.det.pseudo_label_runner import (Stage2Options,
                                                 generate_label_files)
    from bana_mm.utils.label_io import read_label_png
    size, max_pixels = args.one_image[0], int(args.one_image[1])
    cfg = Config.fromfile(args.config)
    cfg.model.backbone.width_mult = args.width_mult
    cfg.model.head.update(
        in_channels=max(1, int(1024 * args.width_mult)),
        num_classes=len(WHOLE_CLASSES))
    with DefaultScope.overwrite_default_scope('mmdet'):
        import bana_mm.det  # noqa: F401
        model = MODELS.build(cfg.model).eval()
    with tempfile.TemporaryDirectory(prefix='stage2_whole_') as tmp:
        data = one_image_set(size, args.image, osp.join(tmp, 'data'))
        cfg.train_dataloader.dataset.update(
            data_root=data + '/',
            ann_file='ImageSets/Segmentation/train.txt',
            metainfo=dict(classes=WHOLE_CLASSES))
        dataset = build_label_dataset(cfg)
        options = Stage2Options(
            workers=args.end_to_end_workers,
            num_vis=0,
            evaluate=False,
            labels=PseudoLabelConfig(max_pixels=max_pixels))
        out = osp.join(tmp, 'labels')
        reset_peak_rss()
        cpu = cpu_seconds()
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # progress bar
            report = generate_label_files(model, dataset, out, options,
                                          WHOLE_CLASSES)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu
        # the workers have exited: the largest one's peak (KiB on Linux)
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        peak = peak_rss_bytes() + children * 1024
        if report['failed']:
            raise RuntimeError(f'stage 2 failed: {report["failed"]}')
        label = read_label_png(osp.join(out, 'Ycrf', 'image.png'))
    width, height = parse_size(size)
    if label.shape != (height, width):
        raise RuntimeError(f'label {label.shape} is not {height}x{width}')
    down = report['downscaled']
    return dict(
        seconds=seconds,
        cpu_seconds=cpu,
        peak_mib=mib(peak),
        at=down[0]['at'] if down else [height, width],
        parts={key: report[key][0]
               for key in WHOLE_PARTS})


def whole_image_rows(args: argparse.Namespace,
                     failures: List[str]) -> Tuple[List[tuple], List[str]]:
    """One row per ``--end-to-end`` size and ``--max-pixels``, each in a
    fresh process; also notes of the runs left out."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (REPO, os.environ.get('PYTHONPATH')) if p))
    common = [
        '--width-mult',
        str(args.width_mult), '--image', args.image, '--config', args.config,
        '--end-to-end-workers',
        str(args.end_to_end_workers)
    ] + (['--threads', str(args.threads)] if args.threads else [])
    rows: List[tuple] = []
    notes: List[str] = []
    for size in args.end_to_end:
        width, height = parse_size(size)
        mpx = width * height / 1e6
        for cap in args.max_pixels:
            if not cap and width * height > args.uncapped_limit:
                notes.append(f'{width}x{height} with max_pixels 0 left out '
                             f'(above --uncapped-limit {args.uncapped_limit})')
                continue
            out = subprocess.run(
                [sys.executable, __file__, '--one-image', size,
                 str(cap)] + common,
                capture_output=True,
                text=True,
                cwd=REPO,
                env=env)
            if out.returncode:
                tail = out.stderr.strip().splitlines() or ['killed?']
                failures.append(f'{width}x{height} max_pixels {cap}: exit '
                                f'{out.returncode}: {tail[-1]}')
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            h, w = r['at']
            rows.append(
                (f'{width}x{height}', str(cap or 'off'), f'{w}x{h}',
                 f'{r["seconds"]:.1f}', f'{r["cpu_seconds"]:.1f}',
                 f'{r["seconds"] / mpx:.1f}', f'{r["cpu_seconds"] / mpx:.1f}',
                 f'{r["peak_mib"]:.0f}', *(f'{r["parts"][key]:.2f}'
                                           for key in WHOLE_PARTS)))
    return rows, notes


# ------------------------------------------------------------------- table
def with_sums(rows: List[Row]) -> List[tuple]:
    """Table rows: each group's parts with their share of the group's sum,
    the sum (peak: the largest part's), then its wall time if measured
    (share: wall / sum)."""

    def cell(v: Optional[float], digits: int) -> Optional[str]:
        return None if v is None else f'{v:.{digits}f}'

    out: List[tuple] = []
    groups: Dict[tuple, List[Row]] = {}
    for row in rows:
        groups.setdefault(row[:3], []).append(row)
    for key, group in groups.items():
        parts = [r for r in group if r[3] != 'wall']
        total = sum(r[4] for r in parts if r[4] is not None)
        peaks = [r[6] for r in parts if r[6] is not None]
        summed = (*key, 'sum', total, None, max(peaks) if peaks else None)
        for r in parts + [summed] + [r for r in group if r[3] == 'wall']:
            share = f'{r[4] / total:.0%}' if r[4] is not None and total \
                else None
            out.append((*key, r[3], cell(r[4],
                                         3), cell(r[5],
                                                  3), share, cell(r[6], 1)))
    return out


def main(argv: Optional[Sequence[str]] = None) -> List[tuple]:
    """Measure, print the table, return its rows."""
    args = parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure_part(args)))
        return []
    if args.one_image:
        print(json.dumps(measure_whole_image(args)))
        return []
    failures: List[str] = []
    rows = synthetic_rows(args, failures) if args.sizes else []
    notes = [machine_line()]
    if args.sizes:
        notes.append(f'synthetic: {args.image} images, '
                     f'{max(1, int(1024 * args.width_mult))}-channel stride-8 '
                     f'features, 3 boxes; {args.repeats} run(s) per part '
                     f'after {args.warmup} warm-up, fresh process each')
    if args.images:
        more, line = dataset_rows(args)
        rows += more
        notes.append(line)
    table = with_sums(rows)
    whole: List[tuple] = []
    if args.end_to_end:
        whole, left_out = whole_image_rows(args, failures)
        notes.append(f'whole images: {args.image}, 3 boxes, the model of '
                     f'{osp.relpath(args.config, REPO)} (width '
                     f'{args.width_mult}), workers '
                     f'{args.end_to_end_workers}, fresh process each')
        notes += left_out
    notes.append(f'load at the end {load_average()}')
    print('\n'.join(notes))
    if table:
        print(
            format_table(('input', 'upsample', 'workers', 'part', 's/image',
                          'IQR', 'share', 'peak MiB'),
                         table,
                         left=2))
    if whole:
        print(
            format_table(
                ('image', 'max_pixels', 'labelled at', 'wall s', 'CPU s',
                 'wall s/MP', 'CPU s/MP', 'peak MiB', *WHOLE_PARTS.values()),
                whole,
                left=3))
    for failure in failures:
        print(f'failed: {failure}')
    return table


if __name__ == '__main__':
    main()
