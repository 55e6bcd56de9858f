"""What stage 2 reads: the dataset to label and the stage-1 network's side
of it (features, classifier rows), SPEC §2.

The labelling set is the stage-1 training set with the test pipeline (each
image at its own size, no augmentation) and ``test_mode`` (no image
dropped); the features are the BAP classifier's backbone output.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..core.class_mapping import map_class_weights
from ..core.downscale import OriginalSize, capped_hw, resize_image, scale_boxes
from ..utils.cli import resolve_split
from ..utils.io import file_state
from ..utils.label_layout import image_stem
from .bap_head import gt_boxes_of

#: Used when a config has no test / val dataloader: the image at its own size.
DEFAULT_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]


def innermost_dataset(dataset_cfg: dict) -> dict:
    """The innermost dataset config of wrappers (RepeatDataset, ...)."""
    while 'dataset' in dataset_cfg and 'ann_file' not in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def label_dataset_config(cfg,
                         data_root: Optional[str] = None,
                         split: Optional[str] = None) -> dict:
    """The stage-1 training set of ``cfg`` with the test pipeline (images
    at their own size, no augmentation) and ``test_mode`` (no image
    dropped); ``data_root`` / ``split`` (the ``ann_file``) override it."""
    dataset = copy.deepcopy(innermost_dataset(cfg.train_dataloader.dataset))
    test_loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    dataset['pipeline'] = copy.deepcopy(
        innermost_dataset(test_loader.dataset
                          )['pipeline'] if test_loader else DEFAULT_PIPELINE)
    dataset['test_mode'] = True
    if data_root is not None:
        dataset['data_root'] = data_root.rstrip('/') + '/'
    if split is not None:
        dataset['ann_file'] = resolve_split(dataset.get('data_root'), split)
    return dataset


def build_label_dataset(cfg,
                        data_root: Optional[str] = None,
                        split: Optional[str] = None):
    """Build :func:`label_dataset_config` in the mmdet scope."""
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(label_dataset_config(cfg, data_root, split))


def is_coco_dataset(dataset) -> bool:
    from mmdet.datasets import CocoDataset
    return isinstance(dataset, CocoDataset)


def model_classes(
        cfg,
        checkpoint_meta: Optional[dict] = None) -> Optional[Tuple[str, ...]]:
    """Class names the stage-1 classifier was trained on: the checkpoint's
    ``dataset_meta``, else the config's training set, else None."""
    meta = (checkpoint_meta or {}).get('dataset_meta') or {}
    if meta.get('classes'):
        return tuple(meta['classes'])
    train = innermost_dataset(cfg.train_dataloader.dataset)
    classes = (train.get('metainfo') or {}).get('classes')
    return tuple(classes) if classes else None


def classifier_for(
    model, data_classes: Sequence[str],
    trained_classes: Optional[Sequence[str]]
) -> Tuple[torch.Tensor, Tuple[int, ...]]:
    """Classifier rows for the dataset's classes and the class-agnostic
    labels (classes the model never saw, SPEC §2 variants)."""
    weights = model.head.class_weights.detach().float().cpu()
    rows = weights.shape[0] - 1
    if trained_classes is not None and len(trained_classes) != rows:
        raise ValueError(
            f'the stage-1 classifier has {rows} class rows (+ background) '
            f'but its class names list {len(trained_classes)} classes '
            f'({", ".join(map(str, tuple(trained_classes)[:4]))}, ...): the '
            'names (checkpoint dataset_meta, else the config) do not belong '
            'to this classifier; is the checkpoint a stage-1 BAP checkpoint '
            'of this config? (a stage-3 / mmseg checkpoint lists '
            '"background" among its classes)')
    if trained_classes is None or tuple(trained_classes) == tuple(
            data_classes):
        if rows != len(data_classes):
            raise ValueError(
                f'the stage-1 classifier has {rows} classes but the dataset '
                f'has {len(data_classes)}; give the checkpoint\'s class '
                'names (dataset_meta) to map them by name')
        return weights, ()
    return map_class_weights(weights, trained_classes, data_classes)


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """sha256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(model) -> str:
    """sha256 over a model's state dict (names, dtypes, shapes, values):
    the identity of an in-memory model (``PseudoLabelHook``)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f'{name}:{value.dtype}:{tuple(value.shape)};'.encode())
        digest.update(
            value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.
            numel() else b'')
    return digest.hexdigest()


def dataset_fingerprint(dataset) -> dict:
    """The labelled image list (count and sha256 of the ids in order), the
    data root and the split (``ann_file``).

    Raises:
        ValueError naming the split / json and the images when two images
        share an output name (``a/x.jpg``, ``b/x.jpg``): one would get the
        other's labels.
    """
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    stems = [image_stem(dict(img_path=p)) for p in paths]
    ann_file = getattr(dataset, 'ann_file', None)
    first: Dict[str, str] = {}
    clashes = []
    for stem, path in zip(stems, paths):
        if first.setdefault(stem, path) != path:
            clashes.append((first[stem], path))
    if clashes:
        shown = '; '.join(f'{a} and {b}' for a, b in clashes[:5])
        raise ValueError(
            f'{ann_file}: {len(clashes)} image(s) share an output name with '
            f'another image (stage 2 names labels by file name without '
            f'folder): {shown}; give the images distinct file names')
    data_root = getattr(dataset, 'data_root', None)
    return dict(
        data_root=osp.abspath(data_root) if data_root else None,
        split=osp.abspath(ann_file) if ann_file else None,
        images=len(stems),
        image_ids_sha256=hashlib.sha256(
            '\n'.join(stems).encode('utf-8')).hexdigest())


def image_inputs(dataset) -> Dict[str, Dict[str, str]]:
    """What each image's labels are computed from, by output name: the
    image file (size and modification time) and its boxes (sha256 of the
    boxes, classes and flags as the dataset parsed them from the XML or
    json, so an edit of one annotation changes only that image)."""
    inputs = {}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        boxes = json.dumps(
            info.get('instances', []),
            sort_keys=True,
            default=lambda v: v.tolist() if hasattr(v, 'tolist') else str(v))
        inputs[image_stem(info)] = dict(
            image=file_state(info['img_path']),
            boxes=hashlib.sha256(boxes.encode('utf-8')).hexdigest()[:16])
    return inputs


@torch.no_grad()
def network_features(model, item: dict, max_pixels: int = 0):
    """Backbone features of one test-pipeline item.

    An image with more than ``max_pixels`` pixels (0: off) is scaled down
    to at most that many first (:func:`~bana_mm.core.downscale.capped_hw`,
    boxes alike): everything returned is at that size, and ``original``
    holds the size and boxes its labels go back to.

    Returns (feat (1, D, h, w) on CPU, input_hw, image RGB (H, W, 3) uint8,
    boxes (N, 4), labels (N,), original: :class:`OriginalSize` or None).
    """
    sample = item['data_samples']
    if tuple(sample.img_shape[:2]) != tuple(sample.ori_shape[:2]):
        raise ValueError(
            f'{sample.img_path}: stage 2 needs the image at its own size but '
            f'the test pipeline resized {sample.ori_shape[:2]} to '
            f'{sample.img_shape[:2]}; remove Resize from test_pipeline')
    image = item['inputs']  # (3, H, W) uint8, BGR
    boxes, labels = gt_boxes_of(sample)
    boxes, labels = boxes.cpu(), labels.cpu()
    full_hw = tuple(image.shape[-2:])
    small_hw = capped_hw(full_hw, max_pixels)
    original = None
    if small_hw is not None:
        original = OriginalSize(full_hw, boxes.numpy(), labels.numpy())
        image = torch.from_numpy(
            resize_image(image.permute(1, 2, 0).numpy(),
                         small_hw)).permute(2, 0, 1)
        boxes = scale_boxes(boxes, full_hw, small_hw)
    data = model.data_preprocessor(
        dict(inputs=[image], data_samples=[sample]), False)
    inputs = data['inputs']
    feat = model.extract_feat(inputs).float().cpu()
    image_rgb = image.permute(1, 2, 0).numpy()[..., ::-1]
    return (feat, tuple(inputs.shape[-2:]), np.ascontiguousarray(image_rgb),
            boxes, labels, original)
