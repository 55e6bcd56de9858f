"""Seconds per image of stage-2 generation over a real image set, split into
network / unaries / DenseCRF / retrieval, for several ``--workers`` and both
``upsample`` modes.

Runs the same code as ``tools/gen_pseudo_labels.py`` (files written to a
temporary folder, no evaluation, no pictures) with the full-width VGG-16
LargeFOV of the paper (random weights unless ``--checkpoint``: the time does
not depend on the weights). Defaults to ``../shared/data/coco128_voc20``
(COCO images, resized by default to VOC's size: longer side 500), else the
embedded synthetic dataset.

    PYTHONPATH=. .venv/bin/python tools/benchmarks/stage2_speed.py \\
        [--images 12] [--workers 1 2] [--modes maps features]

"wall" is the elapsed time of the whole run divided by the images: with
workers > 0 the network of the next image overlaps DenseCRF of the previous
ones, so wall < network + unaries + CRF + retrieval.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
import tempfile

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

COCO128 = osp.join(osp.dirname(REPO), 'shared', 'data', 'coco128_voc20')


def resized_copy(root: str, layout, count: int, max_side: int,
                 out: str) -> str:
    """The first ``count`` training images of a VOC-layout folder, scaled
    so that the longer side is ``max_side`` (boxes scaled alike)."""
    import os
    import xml.etree.ElementTree as ET

    import cv2
    with open(osp.join(root, layout.train_split)) as f:
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
    names = osp.join(root, 'class_names.txt')
    if osp.isfile(names):
        with open(names) as src, open(osp.join(out, 'class_names.txt'),
                                      'w') as dst:
            dst.write(src.read())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default=None)
    parser.add_argument(
        '--config',
        default=osp.join(REPO, 'configs', 'bana', 'bap_vgg16_voc.py'))
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--images', type=int, default=12)
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--modes', nargs='+', default=['maps', 'features'])
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch threads of the main process')
    parser.add_argument(
        '--max-side',
        type=int,
        default=500,
        help='resize images (and boxes) so that the longer '
        'side is at most this (VOC: 500); 0 keeps them')
    args = parser.parse_args()

    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    from bana_mm.apis.pipeline import VOCLayout, ensure_default_dataset
    from bana_mm.apis.stage2 import (Stage2Options, build_label_dataset,
                                     generate_label_files, merge_reports)
    from bana_mm.core.pseudo_labels import PseudoLabelConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.data_root
    if root is None:
        root = COCO128 if osp.isdir(COCO128) else ensure_default_dataset(
            osp.join(tempfile.gettempdir(), 'bana_mm_synthetic'))
    layout = VOCLayout.inspect(root)
    tmp = tempfile.TemporaryDirectory()
    if args.max_side:
        root = resized_copy(root, layout, args.images, args.max_side, tmp.name)
        layout = VOCLayout.inspect(root)
    cfg = Config.fromfile(args.config)
    cfg.train_dataloader.dataset.update(
        data_root=root.rstrip('/') + '/',
        ann_file=layout.train_split,
        metainfo=dict(classes=layout.classes))
    cfg.model.head.num_classes = len(layout.classes)
    with DefaultScope.overwrite_default_scope('mmdet'):
        import bana_mm.det  # noqa: F401
        model = MODELS.build(cfg.model)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    dataset = build_label_dataset(cfg)
    if len(dataset) > args.images:
        dataset = dataset.get_subset(args.images)
    sizes = [dataset.get_data_info(i) for i in range(len(dataset))]
    mean_px = sum(s['height'] * s['width'] for s in sizes) / len(sizes)
    print(f'{len(dataset)} images from {root}, mean {mean_px / 1e3:.0f} '
          f'kpixels (500x375 VOC = 188 kpixels); torch threads '
          f'{torch.get_num_threads()}')
    print(f'{"upsample":9s} {"workers":>7s} {"wall":>7s} {"network":>8s} '
          f'{"unaries":>8s} {"CRF":>7s} {"retrieval":>9s}  (s/image)')
    for mode in args.modes:
        for workers in args.workers:
            with tempfile.TemporaryDirectory() as out:
                options = Stage2Options(
                    workers=workers,
                    num_vis=0,
                    evaluate=False,
                    labels=PseudoLabelConfig(upsample=mode))
                report = generate_label_files(model, dataset, out, options,
                                              layout.classes)
            run = merge_reports([report], workers)
            t = run['mean_seconds']
            print(
                f'{mode:9s} {workers:7d} {run["seconds_per_image"]:7.2f} '
                f'{t["network"]:8.2f} {t["unary"]:8.2f} {t["crf"]:7.2f} '
                f'{t["retrieval"]:9.2f}',
                flush=True)


if __name__ == '__main__':
    main()
