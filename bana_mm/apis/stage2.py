"""Stage 2 over a dataset: pseudo-label files, their scores and pictures.

The per-image maths is :mod:`bana_mm.core.pseudo_labels` (SPEC §2). This
module runs it over a box dataset with a stage-1 model and is shared by
``tools/gen_pseudo_labels.py``, :class:`~bana_mm.engine.PseudoLabelHook` and
the one-command pipeline.

Work split (so that a GPU never waits for DenseCRF): the main process loads
an image, runs the network and computes the unaries
(:func:`~bana_mm.core.pseudo_labels.prepare_pseudo_labels`); a pool of
``workers`` processes runs DenseCRF, Yret and the file writes
(:func:`~bana_mm.core.pseudo_labels.finish_pseudo_labels`). Under a
distributed launcher each rank takes its own shard of the images
(``DefaultSampler(round_up=False)``: every image exactly once).

Output folder::

    OUT/Ycrf/<id>.png, OUT/Yret/<id>.png   palette PNGs, 0 bg, c = class c, 255 ignore
    OUT/vis/<id>.jpg                       overlay sheets of the first images
    OUT/instances_ycrf.json, OUT/instances_yret.json   (COCO input) RLE masks
    OUT/run.json                           what this run did, timings
    OUT/metrics.json                       scores, when ground truth exists

Every file is written atomically; a rerun skips images whose two PNGs exist.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import os
import os.path as osp
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..core.baselines import box_baseline, grabcut_baseline
from ..core.class_mapping import map_class_weights
from ..core.pseudo_labels import (PreparedImage, PseudoLabelConfig,
                                  finish_pseudo_labels, instance_masks,
                                  masks_to_coco_rle, prepare_pseudo_labels)
from ..utils.io import atomic_open, atomic_write_text
from ..utils.label_io import read_label_png, write_label_png  # noqa: F401

IGNORE_INDEX = 255
MAPS = ('Ycrf', 'Yret')
#: Used when a config has no test / val dataloader: the image at its own size.
DEFAULT_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor'))]


@dataclass
class Stage2Options:
    """How to run stage 2 over a dataset.

    Attributes:
        workers: DenseCRF / retrieval processes; 0 runs them inline.
        num_vis: overlay sheets for the first ``num_vis`` images.
        evaluate: write ``metrics.json`` when ground truth exists.
        grabcut: include the GrabCut baseline (5 iterations) in the scores.
        grabcut_iterations: GrabCut iterations per box.
        seg_subdir: ground-truth class maps of a VOC-layout ``data_root``.
        labels: the per-image options of SPEC §2.
    """
    workers: int = 1
    num_vis: int = 4
    evaluate: bool = True
    grabcut: bool = True
    grabcut_iterations: int = 5
    seg_subdir: str = 'SegmentationClass'
    labels: PseudoLabelConfig = field(default_factory=PseudoLabelConfig)


# ------------------------------------------------------------------ files
def image_stem(data_info: dict) -> str:
    """Output name of an image: its file name without suffix."""
    return osp.splitext(osp.basename(data_info['img_path']))[0]


def label_path(out_dir: str, kind: str, stem: str) -> str:
    return osp.join(out_dir, kind, f'{stem}.png')


def remove_stale_temp_files(out_dir: str) -> List[str]:
    """Delete the temp files a killed run left behind (never read: results
    only appear under their final name, by rename)."""
    removed = []
    for sub in MAPS + ('vis', ):
        folder = osp.join(out_dir, sub)
        if not osp.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.startswith('.') and name.endswith('.tmp'):
                os.unlink(osp.join(folder, name))
                removed.append(name)
    return removed


def is_done(out_dir: str, stem: str, with_yret: bool = True) -> bool:
    kinds = MAPS if with_yret else MAPS[:1]
    return all(osp.isfile(label_path(out_dir, k, stem)) for k in kinds)


# ---------------------------------------------------------------- dataset
def _unwrap(dataset_cfg: dict) -> dict:
    """The innermost dataset config of wrappers (RepeatDataset, ...)."""
    while 'dataset' in dataset_cfg and 'ann_file' not in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def label_dataset_config(cfg, data_root: Optional[str] = None,
                         split: Optional[str] = None) -> dict:
    """The stage-1 training set of ``cfg`` with the test pipeline (images
    at their own size, no augmentation) and ``test_mode`` (no image
    dropped); ``data_root`` / ``split`` (the ``ann_file``) override it."""
    dataset = copy.deepcopy(_unwrap(cfg.train_dataloader.dataset))
    test_loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    dataset['pipeline'] = copy.deepcopy(
        _unwrap(test_loader.dataset)['pipeline'] if test_loader
        else DEFAULT_PIPELINE)
    dataset['test_mode'] = True
    if data_root is not None:
        dataset['data_root'] = data_root.rstrip('/') + '/'
    if split is not None:
        dataset['ann_file'] = split
    return dataset


def build_label_dataset(cfg, data_root: Optional[str] = None,
                        split: Optional[str] = None):
    """Build :func:`label_dataset_config` in the mmdet scope."""
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope

    import bana_mm.det  # noqa: F401  (box datasets)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(label_dataset_config(cfg, data_root, split))


def is_coco_dataset(dataset) -> bool:
    from mmdet.datasets import CocoDataset
    return isinstance(dataset, CocoDataset)


# ------------------------------------------------------------------ model
def model_classes(cfg, checkpoint_meta: Optional[dict] = None
                  ) -> Optional[Tuple[str, ...]]:
    """Class names the stage-1 classifier was trained on: the checkpoint's
    ``dataset_meta``, else the config's training set, else None."""
    meta = (checkpoint_meta or {}).get('dataset_meta') or {}
    if meta.get('classes'):
        return tuple(meta['classes'])
    train = _unwrap(cfg.train_dataloader.dataset)
    classes = (train.get('metainfo') or {}).get('classes')
    return tuple(classes) if classes else None


def classifier_for(model, data_classes: Sequence[str],
                   trained_classes: Optional[Sequence[str]]
                   ) -> Tuple[torch.Tensor, Tuple[int, ...]]:
    """Classifier rows for the dataset's classes and the class-agnostic
    labels (classes the model never saw, SPEC §2 variants)."""
    weights = model.head.class_weights.detach().float().cpu()
    if trained_classes is None or tuple(trained_classes) == tuple(
            data_classes):
        if weights.shape[0] != len(data_classes) + 1:
            raise ValueError(
                f'the classifier has {weights.shape[0] - 1} classes but the '
                f'dataset has {len(data_classes)}; give the checkpoint\'s '
                'class names (dataset_meta) to map them by name')
        return weights, ()
    return map_class_weights(weights, trained_classes, data_classes)


@torch.no_grad()
def network_features(model, item: dict):
    """Backbone features of one test-pipeline item.

    Returns (feat (1, D, h, w) on CPU, input_hw, image RGB (H, W, 3) uint8,
    boxes (N, 4), labels (N,)).
    """
    from ..det.bap_head import gt_boxes_of
    sample = item['data_samples']
    if tuple(sample.img_shape[:2]) != tuple(sample.ori_shape[:2]):
        raise ValueError(
            f'{sample.img_path}: stage 2 needs the image at its own size but '
            f'the test pipeline resized {sample.ori_shape[:2]} to '
            f'{sample.img_shape[:2]}; remove Resize from test_pipeline')
    data = model.data_preprocessor(
        dict(inputs=[item['inputs']], data_samples=[sample]), False)
    inputs = data['inputs']
    feat = model.extract_feat(inputs).float().cpu()
    image_rgb = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1]
    boxes, labels = gt_boxes_of(sample)
    return (feat, tuple(inputs.shape[-2:]), np.ascontiguousarray(image_rgb),
            boxes.cpu(), labels.cpu())


def load_stage1_model(cfg, checkpoint: str, device: Optional[str] = None):
    """The stage-1 classifier of ``cfg`` with ``checkpoint`` loaded, in eval
    mode; returns (model, checkpoint meta)."""
    from mmdet.registry import MODELS
    from mmengine.device import get_device
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    import bana_mm.det  # noqa: F401  (BAPClassifier)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu',
                           logger='silent')
    model.to(device or get_device()).eval()
    return model, ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}


# ---------------------------------------------------------------- workers
@dataclass
class FinishJob:
    """What a worker needs to finish and write one image."""
    prep: PreparedImage
    out_dir: str
    stem: str
    vis: bool
    class_names: Tuple[str, ...]


def _worker_init() -> None:
    torch.set_num_threads(1)


def finish_and_write(job: FinishJob) -> dict:
    """DenseCRF + Yret of one image, its PNGs (and sheet); timings."""
    result = finish_pseudo_labels(job.prep)
    if result.yret is not None:
        write_label_png(label_path(job.out_dir, 'Yret', job.stem),
                        result.yret)
    # Ycrf last: an image counts as done once its Ycrf exists.
    write_label_png(label_path(job.out_dir, 'Ycrf', job.stem), result.ycrf)
    if job.vis:
        import cv2

        from ..visualization import pseudo_label_sheet
        prep = job.prep
        sheet = pseudo_label_sheet(
            prep.image, prep.boxes.numpy(), prep.labels.numpy(),
            job.class_names, result.u0, result.class_ids,
            result.unaries[1:], result.ycrf, result.yret)
        ok, encoded = cv2.imencode('.jpg', sheet[..., ::-1],
                                   [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            with atomic_open(osp.join(job.out_dir, 'vis',
                                      f'{job.stem}.jpg')) as f:
                f.write(encoded.tobytes())
    return dict(stem=job.stem, unary=result.unary_seconds,
                crf=result.crf_seconds, retrieval=result.retrieval_seconds)


class _Executor:
    """A process pool (``workers`` > 0) or inline execution, with at most
    ``2 * workers`` jobs in flight so memory stays bounded."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = None
        if workers > 0:
            import multiprocessing as mp
            self.pool = ProcessPoolExecutor(
                workers, mp_context=mp.get_context('spawn'),
                initializer=_worker_init)
        self.pending: deque = deque()

    def submit(self, fn, arg, context) -> List[Tuple[object, object]]:
        """Run or queue ``fn(arg)``; return finished (context, result or
        exception) pairs."""
        if self.pool is None:
            return [(context, _call(fn, arg))]
        self.pending.append((context, self.pool.submit(fn, arg)))
        done = []
        while len(self.pending) > 2 * self.workers:
            done.append(self._pop())
        return done

    def _pop(self):
        context, future = self.pending.popleft()
        try:
            return context, future.result()
        except Exception as err:  # reported per image by the caller
            return context, err

    def drain(self) -> List[Tuple[object, object]]:
        return [self._pop() for _ in range(len(self.pending))]

    def map(self, fn, args: Sequence) -> List[object]:
        if self.pool is None:
            return [_call(fn, a) for a in args]
        futures: List[Future] = [self.pool.submit(fn, a) for a in args]
        out = []
        for future in futures:
            try:
                out.append(future.result())
            except Exception as err:
                out.append(err)
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def __enter__(self) -> '_Executor':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _call(fn, arg):
    try:
        return fn(arg)
    except Exception as err:
        return err


# ------------------------------------------------------------- generation
def _progress(total: int):
    from mmengine.dist import is_main_process
    from mmengine.utils import ProgressBar
    return ProgressBar(total) if is_main_process() and total else None


def _log(message: str, level: int = logging.INFO) -> None:
    from mmengine.logging import print_log
    print_log(message, logger='current', level=level)


def generate_label_files(model, dataset, out_dir: str,
                         options: Optional[Stage2Options] = None,
                         trained_classes: Optional[Sequence[str]] = None
                         ) -> dict:
    """Write Ycrf / Yret for this rank's shard of ``dataset``.

    Returns this rank's report: ``written``, ``skipped`` (finished by an
    earlier run), ``failed`` ({image, error}) and per-image timings.
    """
    from mmengine.dataset import DefaultSampler

    options = options or Stage2Options()
    data_classes = tuple(dataset.metainfo['classes'])
    weights, agnostic = classifier_for(model, data_classes, trained_classes)
    label_cfg = copy.deepcopy(options.labels)
    label_cfg.agnostic_classes = tuple(sorted(
        set(label_cfg.agnostic_classes) | set(agnostic)))
    if agnostic:
        _log(f'stage 2: class-agnostic unaries (1 - u0) for '
             f'{[data_classes[a] for a in agnostic]}: not in the classifier')
    with_yret = label_cfg.compute_yret
    indices = list(DefaultSampler(dataset, shuffle=False, round_up=False))
    report: Dict[str, list] = dict(written=[], skipped=[], failed=[],
                                   network=[], unary=[], crf=[],
                                   retrieval=[])
    bar = _progress(len(indices))
    model.eval()
    start = time.perf_counter()

    def collect(finished) -> None:
        for stem, result in finished:
            if isinstance(result, Exception):
                report['failed'].append(dict(image=stem, error=repr(result)))
                _log(f'stage 2: {stem} failed: {result!r}', logging.WARNING)
            else:
                report['written'].append(stem)
                for key in ('unary', 'crf', 'retrieval'):
                    report[key].append(result[key])
            if bar is not None:
                bar.update()

    with _Executor(options.workers) as executor:
        for idx in indices:
            info = dataset.get_data_info(idx)
            stem = image_stem(info)
            if is_done(out_dir, stem, with_yret):
                report['skipped'].append(stem)
                if bar is not None:
                    bar.update()
                continue
            try:
                t0 = time.perf_counter()
                item = dataset[idx]
                feat, input_hw, image, boxes, labels = network_features(
                    model, item)
                report['network'].append(time.perf_counter() - t0)
                prep = prepare_pseudo_labels(image, feat, weights, boxes,
                                             labels, input_hw, label_cfg)
            except Exception as err:  # unreadable image, bad boxes, ...
                collect([(f'{stem} ({info["img_path"]})', err)])
                continue
            job = FinishJob(prep=prep, out_dir=out_dir, stem=stem,
                            vis=idx < options.num_vis,
                            class_names=data_classes)
            collect(executor.submit(finish_and_write, job, stem))
        collect(executor.drain())
    if bar is not None:
        bar.file.write('\n')
    report['seconds'] = time.perf_counter() - start
    return report


def _mean(values: Sequence[float]) -> Optional[float]:
    return round(float(np.mean(values)), 4) if len(values) else None


def merge_reports(reports: Sequence[dict], workers: int) -> dict:
    """One ``run.json`` from the reports of all ranks."""
    merged = {key: [v for r in reports for v in r[key]]
              for key in ('written', 'skipped', 'failed')}
    timings = {key: [v for r in reports for v in r[key]]
               for key in ('network', 'unary', 'crf', 'retrieval')}
    seconds = max(r['seconds'] for r in reports)
    written = len(merged['written'])
    return dict(
        images=written + len(merged['skipped']) + len(merged['failed']),
        written=written, skipped=len(merged['skipped']),
        failed=merged['failed'], workers=workers, world_size=len(reports),
        seconds=round(seconds, 2),
        seconds_per_image=round(seconds / written, 4) if written else None,
        mean_seconds={k: _mean(v) for k, v in timings.items()},
        per_rank=[dict(written=r['written'], skipped=r['skipped'])
                  for r in reports])


# ------------------------------------------------------------ COCO output
def write_coco_instances(dataset, out_dir: str) -> Dict[str, str]:
    """``instances_ycrf.json`` / ``instances_yret.json``: the input COCO
    json with every non-crowd box's pseudo mask (SPEC §2: (Y == c) inside
    the box) as RLE, same ids; images without label files are left out."""
    import contextlib

    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools chatter
        coco = COCO(dataset.ann_file)
    cat2label = dataset.cat2label
    stems = {}
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        stems[info['img_id']] = image_stem(info)
    outputs = {}
    for kind in MAPS:
        images, annotations = [], []
        for img_id, stem in stems.items():
            path = label_path(out_dir, kind, stem)
            if not osp.isfile(path):
                continue
            label_map = read_label_png(path)
            images.append(coco.imgs[img_id])
            anns = [a for a in coco.imgToAnns.get(img_id, [])
                    if not a.get('iscrowd', 0)
                    and a['category_id'] in cat2label]
            if not anns:
                continue
            boxes = np.array([[a['bbox'][0], a['bbox'][1],
                               a['bbox'][0] + a['bbox'][2],
                               a['bbox'][1] + a['bbox'][3]] for a in anns],
                             dtype=np.float32)
            labels = [cat2label[a['category_id']] for a in anns]
            masks = instance_masks(label_map, boxes, labels)
            for ann, mask, rle in zip(anns, masks, masks_to_coco_rle(masks)):
                annotations.append(dict(
                    id=ann['id'], image_id=img_id,
                    category_id=ann['category_id'], bbox=ann['bbox'],
                    iscrowd=0, area=int(mask.sum()), segmentation=rle))
        data = dict(images=images,
                    categories=[coco.cats[c] for c in sorted(coco.cats)],
                    annotations=annotations)
        path = osp.join(out_dir, f'instances_{kind.lower()}.json')
        atomic_write_text(path, json.dumps(data))
        outputs[kind] = path
    return outputs


# ------------------------------------------------------------- evaluation
@dataclass
class EvalJob:
    """One image's inputs to :func:`evaluation_maps`."""
    stem: str
    img_path: str
    gt_path: Optional[str]
    out_dir: str
    boxes: np.ndarray
    labels: np.ndarray
    grabcut: bool
    grabcut_iterations: int


def evaluation_maps(job: EvalJob) -> dict:
    """Ycrf, Yret, the Box / GrabCut baselines and the ground truth of one
    image (GrabCut is the slow part, so this runs in the worker pool)."""
    maps = {kind: read_label_png(label_path(job.out_dir, kind, job.stem))
            for kind in MAPS if osp.isfile(label_path(job.out_dir, kind,
                                                      job.stem))}
    if 'Ycrf' not in maps:
        return dict(stem=job.stem, missing=True)
    hw = maps['Ycrf'].shape
    out = dict(stem=job.stem, missing=False, ycrf=maps['Ycrf'],
               yret=maps.get('Yret'))
    if job.gt_path is not None:
        gt = read_label_png(job.gt_path)
        if gt.shape != hw:
            raise ValueError(f'{job.gt_path}: ground truth {gt.shape} does '
                             f'not match the image size {hw}')
        out['gt'] = gt
        out['box'] = box_baseline(job.boxes, job.labels, hw)
        if job.grabcut:
            import mmcv
            image = mmcv.imread(job.img_path)
            if image is None:
                raise ValueError(f'cannot read image {job.img_path}')
            out['grabcut'] = grabcut_baseline(image, job.boxes, job.labels,
                                              job.grabcut_iterations)
    return out


def _ground_truth_path(dataset, info: dict, seg_subdir: str
                       ) -> Optional[str]:
    if info.get('seg_map_path'):
        return info['seg_map_path']
    root = getattr(dataset, 'data_root', None) or ''
    path = osp.join(root, seg_subdir, image_stem(info) + '.png')
    return path if osp.isfile(path) else None


def evaluate_label_files(dataset, out_dir: str,
                         options: Optional[Stage2Options] = None,
                         executor: Optional[_Executor] = None) -> dict:
    """Scores of the label files in ``out_dir`` (paper Tables 1-2).

    With ground-truth class maps: mIoU (per class too) of Ycrf, Yret, Box
    and GrabCut, the share of S and the accuracy of Ycrf on S. For COCO
    input: pseudo-mask AP of the RLE jsons against the json's real masks.
    """
    from ..evaluation import AgreementScores, SemanticScores, coco_mask_ap
    options = options or Stage2Options()
    class_names = ('background', ) + tuple(dataset.metainfo['classes'])
    jobs = []
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        kept = [i for i in info['instances'] if not i.get('ignore_flag', 0)]
        jobs.append(EvalJob(
            stem=image_stem(info), img_path=info['img_path'],
            gt_path=_ground_truth_path(dataset, info, options.seg_subdir),
            out_dir=out_dir,
            boxes=np.array([i['bbox'] for i in kept],
                           dtype=np.float32).reshape(-1, 4),
            labels=np.array([i['bbox_label'] for i in kept], dtype=np.int64),
            grabcut=options.grabcut,
            grabcut_iterations=options.grabcut_iterations))
    own = executor is None
    executor = executor or _Executor(options.workers)
    try:
        results = executor.map(evaluation_maps, jobs)
    finally:
        if own:
            executor.close()
    methods = ('ycrf', 'yret', 'box', 'grabcut')
    semantic = {m: SemanticScores(class_names) for m in methods}
    agreement = AgreementScores()
    missing, errors, with_gt = [], [], 0
    for job, result in zip(jobs, results):
        if isinstance(result, Exception):
            errors.append(dict(image=job.stem, error=repr(result)))
            continue
        if result['missing']:
            missing.append(job.stem)
            continue
        gt = result.get('gt')
        if result['yret'] is not None:
            agreement.add(result['ycrf'], result['yret'], gt)
        if gt is None:
            continue
        with_gt += 1
        for method in methods:
            if result.get(method) is not None:
                semantic[method].add(result[method], gt)
    scores = {m: semantic[m].results() for m in methods}
    metrics = dict(
        images=len(jobs), evaluated=with_gt, missing=missing, errors=errors,
        miou={m: scores[m]['miou'] for m in methods
              if scores[m]['images']},
        per_class={m: scores[m]['per_class'] for m in methods
                   if scores[m]['images']},
        **agreement.results())
    if is_coco_dataset(dataset):
        metrics['coco_ap'] = {}
        for kind in MAPS:
            path = osp.join(out_dir, f'instances_{kind.lower()}.json')
            if osp.isfile(path):
                with open(path) as f:
                    pseudo = json.load(f)
                metrics['coco_ap'][kind.lower()] = coco_mask_ap(
                    dataset.ann_file, pseudo['annotations'],
                    [im['id'] for im in pseudo['images']])
    return metrics


# ------------------------------------------------------------------ all
def run_stage2(model, dataset, out_dir: str,
               options: Optional[Stage2Options] = None,
               trained_classes: Optional[Sequence[str]] = None) -> dict:
    """Generate (sharded over ranks), then on rank 0 write the COCO jsons,
    ``metrics.json`` and ``run.json``. Returns ``run.json``'s content with
    ``metrics`` added (on every rank)."""
    from mmengine.dist import (all_gather_object, barrier, broadcast_object_list,
                               get_world_size, is_main_process)
    options = options or Stage2Options()
    os.makedirs(out_dir, exist_ok=True)
    if is_main_process():
        remove_stale_temp_files(out_dir)
    if get_world_size() > 1:
        barrier()
    report = generate_label_files(model, dataset, out_dir, options,
                                  trained_classes)
    reports = all_gather_object(report) if get_world_size() > 1 else [report]
    run = merge_reports(reports, options.workers)
    summary = [None]
    if is_main_process():
        if is_coco_dataset(dataset):
            run['coco_json'] = write_coco_instances(dataset, out_dir)
        if options.evaluate:
            t0 = time.perf_counter()
            run['metrics'] = evaluate_label_files(dataset, out_dir, options)
            run['evaluation_seconds'] = round(time.perf_counter() - t0, 2)
            atomic_write_text(osp.join(out_dir, 'metrics.json'),
                              json.dumps(run['metrics'], indent=2) + '\n')
        record = {k: v for k, v in run.items() if k != 'metrics'}
        record['options'] = _options_record(options)
        atomic_write_text(osp.join(out_dir, 'run.json'),
                          json.dumps(record, indent=2) + '\n')
        summary = [run]
    if get_world_size() > 1:
        broadcast_object_list(summary, src=0)
        barrier()
    return summary[0]


def _options_record(options: Stage2Options) -> dict:
    record = asdict(options)
    record['labels'] = {k: (list(v) if isinstance(v, tuple) else v)
                        for k, v in record['labels'].items()}
    return record


def describe(run: dict, out_dir: str) -> str:
    """A few lines for the log: counts, speed, scores, where things are."""
    lines = [f'pseudo labels in {out_dir}: {run["written"]} written, '
             f'{run["skipped"]} already there, {len(run["failed"])} failed']
    if run.get('seconds_per_image'):
        t = run['mean_seconds']
        lines.append(
            f'  {run["seconds_per_image"]:.2f} s/image wall '
            f'(network {t["network"]}, unaries {t["unary"]}, DenseCRF '
            f'{t["crf"]}, retrieval {t["retrieval"]} s; '
            f'{run["workers"]} CRF workers, {run["world_size"]} ranks)')
    metrics = run.get('metrics') or {}
    if metrics.get('miou'):
        lines.append('  mIoU ' + ', '.join(
            f'{k} {v:.3f}' for k, v in metrics['miou'].items()
            if v is not None))
    if metrics.get('s_share') is not None:
        lines.append(f'  S share {metrics["s_share"]:.3f}, Ycrf accuracy on '
                     f'S {metrics.get("s_accuracy")}')
    for kind, ap in (metrics.get('coco_ap') or {}).items():
        lines.append(f'  {kind} mask AP ' + ', '.join(
            f'{k} {v}' for k, v in ap.items()))
    if osp.isdir(osp.join(out_dir, 'vis')):
        lines.append(f'  pictures: {osp.join(out_dir, "vis")}')
    return '\n'.join(lines)

