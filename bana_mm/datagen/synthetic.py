"""Synthetic box-supervised segmentation dataset (the embedded default data).

Cluttered scenes of textured, non-rectangular objects on textured backgrounds,
written in PASCAL VOC layout (JPEG images, VOC XML boxes, class and object
palette PNGs, split lists) plus COCO instance json files with RLE masks.

Registry-free: depends only on numpy, OpenCV, Pillow and pycocotools. One
module on purpose (over 400 lines): the drawing primitives, the scene
sampler and the writers share one deterministic random stream per image, and
splitting them would spread that contract over several files.
Generation is deterministic: each image draws from its own random stream
seeded by ``(seed, image index)``, and every file is encoded deterministically,
so two runs with the same arguments write byte-identical files.

Usage::

    python -m bana_mm.datagen.synthetic OUT_DIR [--num-train 48] [--num-val 16]
        [--seed 0] [--min-size 160] [--max-size 240]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ..utils.io import atomic_write_bytes
from ..utils.label_io import label_png_bytes
from ..visualization.palette import voc_palette

__all__ = [
    'SYNTHETIC_CLASSES', 'generate_synthetic_dataset', 'voc_palette', 'main'
]

Grid = Tuple[np.ndarray,
             np.ndarray]  # (xx, yy) pixel-centre coordinates, float32 H x W
Box = Tuple[int, int, int,
            int]  # (min_col, min_row, max_col, max_row), 0-based inclusive
TextureFn = Callable[
    [np.random.Generator, np.ndarray, Grid, np.ndarray, float], np.ndarray]
ShapeFn = Callable[
    [np.random.Generator, Tuple[int,
                                int], np.ndarray, float, float], np.ndarray]

MIN_IMAGE_SIZE = 64
MIN_VISIBLE_PIXELS = 64
MIN_VISIBLE_FRACTION = 0.01
JPEG_QUALITY = 95
SPLITS = ('train', 'val')


# --------------------------------------------------------------------------- #
# Shapes: binary masks (uint8 H x W) of one object in image coordinates.
# --------------------------------------------------------------------------- #
def _place(points: np.ndarray, centre: np.ndarray, radius: float,
           angle: float) -> np.ndarray:
    """Rotate, scale and translate unit-radius local points (N x 2) into the
    image."""
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    return points @ rot.T * radius + centre


def _fill(size: Tuple[int, int], polygons: Sequence[np.ndarray]) -> np.ndarray:
    """Rasterise polygons (image coordinates) into a binary mask, 1/16-pixel
    precision."""
    mask = np.zeros(size, np.uint8)
    pts = [np.round(p * 16).astype(np.int32) for p in polygons]
    cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=4)
    return mask


def _ellipse_points(aspect: float, n: int = 72) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), aspect * np.sin(t)], axis=1)


def _disc(rng: np.random.Generator, size: Tuple[int, int], centre: np.ndarray,
          radius: float, angle: float) -> np.ndarray:
    """Filled ellipse."""
    return _fill(size, [
        _place(_ellipse_points(rng.uniform(0.55, 1.0)), centre, radius, angle)
    ])


def _triangle(rng: np.random.Generator, size: Tuple[int, int],
              centre: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """Irregular triangle inscribed in the unit circle."""
    t = np.deg2rad(np.array([90.0, 210.0, 330.0]) + rng.uniform(-18, 18, 3))
    r = rng.uniform(0.85, 1.0, 3)
    pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    return _fill(size, [_place(pts, centre, radius, angle)])


def _ring(rng: np.random.Generator, size: Tuple[int, int], centre: np.ndarray,
          radius: float, angle: float) -> np.ndarray:
    """Elliptic annulus (a disc with a hole)."""
    outer = _ellipse_points(rng.uniform(0.75, 1.0))
    inner = outer * rng.uniform(0.4, 0.55)
    mask = _fill(size, [_place(outer, centre, radius, angle)])
    mask[_fill(size, [_place(inner, centre, radius, angle)]) > 0] = 0
    return mask


def _star(rng: np.random.Generator, size: Tuple[int, int], centre: np.ndarray,
          radius: float, angle: float) -> np.ndarray:
    """Five- or six-pointed star."""
    spikes = int(rng.integers(5, 7))
    t = np.linspace(0, 2 * np.pi, 2 * spikes, endpoint=False)
    r = np.where(np.arange(2 * spikes) % 2 == 0, 1.0, rng.uniform(0.5, 0.62))
    pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    return _fill(size, [_place(pts, centre, radius, angle)])


def _blob(rng: np.random.Generator, size: Tuple[int, int], centre: np.ndarray,
          radius: float, angle: float) -> np.ndarray:
    """Irregular smooth blob: a radial polygon with low-frequency radius
    wobble."""
    t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    r = np.ones_like(t)
    for freq in (2, 3, 4, 5):
        r += rng.uniform(0.05, 0.2) / (
            freq / 2) * np.cos(freq * t + rng.uniform(0, 2 * np.pi))
    r /= r.max()
    pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    return _fill(size, [_place(pts, centre, radius, angle)])


# --------------------------------------------------------------------------- #
# Textures: float32 H x W x 3 RGB images covering the whole canvas.
# --------------------------------------------------------------------------- #
def _rotated(grid: Grid, angle: float) -> Grid:
    xx, yy = grid
    cos, sin = np.cos(angle), np.sin(angle)
    return xx * cos + yy * sin, -xx * sin + yy * cos


def _two_tone(select: np.ndarray, colour: np.ndarray,
              other: np.ndarray) -> np.ndarray:
    return np.where(select[..., None], colour, other).astype(np.float32)


def _stripes(rng: np.random.Generator, colour: np.ndarray, grid: Grid,
             centre: np.ndarray, radius: float) -> np.ndarray:
    """Parallel stripes of the colour and a darker shade."""
    u, _ = _rotated(grid, rng.uniform(0, np.pi))
    period = rng.uniform(6, 12)
    return _two_tone(
        np.sin(2 * np.pi * u / period + rng.uniform(0, 6.3)) > 0, colour,
        colour * rng.uniform(0.45, 0.6))


def _checks(rng: np.random.Generator, colour: np.ndarray, grid: Grid,
            centre: np.ndarray, radius: float) -> np.ndarray:
    """Rotated checkerboard of the colour and a lighter tint."""
    u, v = _rotated(grid, rng.uniform(0, np.pi / 2))
    period = rng.uniform(6, 11)
    parity = (np.floor(u / period) + np.floor(v / period)).astype(
        np.int64) % 2 == 0
    return _two_tone(parity, colour, colour * 0.55 + 255 * 0.45)


def _dots(rng: np.random.Generator, colour: np.ndarray, grid: Grid,
          centre: np.ndarray, radius: float) -> np.ndarray:
    """Regular grid of dark dots on the colour."""
    u, v = _rotated(grid, rng.uniform(0, np.pi / 2))
    period = rng.uniform(7, 11)
    du = (u % period) - period / 2
    dv = (v % period) - period / 2
    dot = du**2 + dv**2 < (0.3 * period)**2
    return _two_tone(~dot, colour, colour * 0.35)


def _gradient(rng: np.random.Generator, colour: np.ndarray, grid: Grid,
              centre: np.ndarray, radius: float) -> np.ndarray:
    """Smooth linear shading across the object."""
    u, _ = _rotated((grid[0] - centre[0], grid[1] - centre[1]),
                    rng.uniform(0, 2 * np.pi))
    t = np.clip(u / (2 * radius) + 0.5, 0, 1)[..., None]
    return np.clip(colour * (0.55 + 0.65 * t), 0, 255).astype(np.float32)


def _noise(rng: np.random.Generator, colour: np.ndarray, grid: Grid,
           centre: np.ndarray, radius: float) -> np.ndarray:
    """Mottled colour: smooth plus fine multiplicative noise."""
    h, w = grid[0].shape
    coarse = _smooth_noise(rng, (h, w), cells=int(rng.integers(10, 18)))
    fine = rng.normal(0, 0.12, (h, w)).astype(np.float32)
    return np.clip(colour * (1 + 0.35 * coarse + fine)[..., None], 0,
                   255).astype(np.float32)


# --------------------------------------------------------------------------- #
# Classes
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class _ClassSpec:
    name: str
    colour: Tuple[int, int, int]  # RGB
    shape: ShapeFn
    texture: TextureFn


_CLASS_SPECS: Tuple[_ClassSpec, ...] = (
    _ClassSpec('disc', (205, 60, 50), _disc, _stripes),
    _ClassSpec('triangle', (45, 90, 205), _triangle, _checks),
    _ClassSpec('ring', (55, 165, 70), _ring, _dots),
    _ClassSpec('star', (230, 185, 40), _star, _gradient),
    _ClassSpec('blob', (155, 65, 175), _blob, _noise),
)

SYNTHETIC_CLASSES: Tuple[str, ...] = tuple(spec.name for spec in _CLASS_SPECS)


# --------------------------------------------------------------------------- #
# Scene composition
# --------------------------------------------------------------------------- #
@dataclass
class _Object:
    label: int  # 0-based class index
    mask: np.ndarray  # full (unoccluded) binary mask
    centre: np.ndarray  # (x, y)
    radius: float


def _smooth_noise(rng: np.random.Generator, size: Tuple[int, int],
                  cells: int) -> np.ndarray:
    """Low-frequency noise in roughly [-1, 1]: a coarse random grid upsampled
    bicubically."""
    h, w = size
    coarse = rng.uniform(
        -1, 1,
        (max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))))
    return cv2.resize(
        coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    """A random colour pulled towards grey (backgrounds are less saturated than
    objects)."""
    colour = rng.uniform(25, 230, 3)
    return colour + rng.uniform(0.2, 0.6) * (colour.mean() - colour)


def _make_background(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Gradient + blotchy noise + semi-transparent clutter (patches, textures,
    lines)."""
    h, w = grid[0].shape
    u, _ = _rotated(grid, rng.uniform(0, 2 * np.pi))
    t = ((u - u.min()) / max(np.ptp(u), 1e-6))[..., None]
    img = (1 - t) * _muted_colour(rng) + t * _muted_colour(rng)
    for c in range(3):
        img[..., c] += 22 * _smooth_noise(
            rng, (h, w), cells=int(rng.integers(3, 8)))

    for _ in range(int(rng.integers(6, 13))):
        kind = rng.integers(4)
        patch = np.zeros((h, w), np.uint8)
        centre = rng.uniform([0, 0], [w, h])
        radius = rng.uniform(0.08, 0.3) * min(h, w)
        angle = rng.uniform(0, 2 * np.pi)
        if kind == 0:  # rotated rectangle
            corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]
                                ]) * [1, rng.uniform(0.3, 1)]
            patch = _fill((h, w), [_place(corners, centre, radius, angle)])
        elif kind == 1:  # ellipse
            patch = _disc(rng, (h, w), centre, radius, angle)
        elif kind == 2:  # irregular blob
            patch = _blob(rng, (h, w), centre, radius, angle)
        else:  # line
            end = centre + rng.uniform(-2, 2, 2) * radius
            cv2.line(patch, tuple(int(v) for v in centre),
                     tuple(int(v) for v in end), 1, int(rng.integers(1, 5)))
        colour = _muted_colour(rng) if rng.random() < 0.6 else rng.uniform(
            0, 255, 3)
        fill = np.broadcast_to(colour, img.shape)
        if rng.random() < 0.35:  # some clutter shares the objects' textures
            texture = _CLASS_SPECS[rng.integers(len(_CLASS_SPECS))].texture
            fill = texture(rng, colour, grid, centre, radius)
        alpha = rng.uniform(0.25, 0.6)
        sel = patch > 0
        img[sel] = (1 - alpha) * img[sel] + alpha * fill[sel]
    return img.astype(np.float32)


def _sample_objects(rng: np.random.Generator, size: Tuple[int, int],
                    min_visible: int) -> List[_Object]:
    """Lay out 1-4 objects (with frequent overlaps), in drawing order."""
    h, w = size
    count = int(rng.choice([1, 2, 3, 4], p=[0.2, 0.3, 0.3, 0.2]))
    objects: List[_Object] = []
    while len(objects) < count:
        label = int(rng.integers(len(_CLASS_SPECS)))
        radius = float(rng.uniform(0.14, 0.3) * min(h, w))
        lo = np.array([radius + 1, radius + 1])
        hi = np.array([w - radius - 2, h - radius - 2])
        if objects and rng.random() < 0.6:  # put it next to an earlier object
            other = objects[int(rng.integers(len(objects)))]
            direction = rng.uniform(0, 2 * np.pi)
            dist = rng.uniform(0.5, 1.1) * (other.radius + radius)
            centre = other.centre + dist * np.array(
                [np.cos(direction), np.sin(direction)])
            centre = np.clip(centre, lo, hi)
        else:
            centre = rng.uniform(lo, hi)
        mask = _CLASS_SPECS[label].shape(rng, size, centre, radius,
                                         rng.uniform(0, 2 * np.pi))
        if int(mask.sum()) >= 2 * min_visible:
            objects.append(_Object(label, mask, centre, radius))
    return objects


def _instance_map(objects: Sequence[_Object], size: Tuple[int,
                                                          int]) -> np.ndarray:
    """Later objects occlude earlier ones: pixel value = 1-based index of the
    top object."""
    inst = np.zeros(size, np.uint8)
    for k, obj in enumerate(objects, start=1):
        inst[obj.mask > 0] = k
    return inst


def _drop_hidden(objects: List[_Object], size: Tuple[int, int],
                 min_visible: int) -> List[_Object]:
    """Remove objects whose visible part is tiny (repeat: removals can uncover
    others)."""
    while True:
        inst = _instance_map(objects, size)
        areas = np.bincount(inst.ravel(), minlength=len(objects) + 1)[1:]
        keep = [
            obj for obj, area in zip(objects, areas) if area >= min_visible
        ]
        if len(keep) == len(objects):
            return objects
        objects = keep


def _render_scene(
        rng: np.random.Generator,
        size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """Return (RGB uint8 image, instance map, 0-based labels of instances
    1..K)."""
    h, w = size
    min_visible = max(MIN_VISIBLE_PIXELS,
                      int(np.ceil(MIN_VISIBLE_FRACTION * h * w)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    grid = (xx, yy)
    img = _make_background(rng, grid)
    objects = _drop_hidden(
        _sample_objects(rng, size, min_visible), size, min_visible)
    for obj in objects:
        spec = _CLASS_SPECS[obj.label]
        colour = np.clip(
            np.array(spec.colour) * rng.uniform(0.8, 1.12) +
            rng.normal(0, 12, 3), 0, 255)
        sel = obj.mask > 0
        img[sel] = spec.texture(rng, colour, grid, obj.centre, obj.radius)[sel]
    # Global illumination, slight optical blur and sensor noise.
    shade = 1 + 0.15 * _smooth_noise(rng, size, cells=3)
    img = cv2.GaussianBlur(img * shade[..., None], (0, 0), 0.7)
    img += rng.normal(0, 3, img.shape)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return image, _instance_map(objects, size), [obj.label for obj in objects]


# --------------------------------------------------------------------------- #
# Encoding and atomic file output
# --------------------------------------------------------------------------- #


def _encode_image(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def _tight_box(mask: np.ndarray) -> Box:
    """Tight box of a non-empty binary mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def _voc_xml(image_id: str, size: Tuple[int, int],
             objects: Sequence[Tuple[str, Box]]) -> bytes:
    """VOC annotation; boxes are 1-based inclusive pixel indices."""
    h, w = size
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'synthetic'
    ET.SubElement(root, 'filename').text = f'{image_id}.jpg'
    size_el = ET.SubElement(root, 'size')
    for tag, value in (('width', w), ('height', h), ('depth', 3)):
        ET.SubElement(size_el, tag).text = str(value)
    ET.SubElement(root, 'segmented').text = '1'
    for name, (x0, y0, x1, y1) in objects:
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = name
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = '0'
        ET.SubElement(obj, 'difficult').text = '0'
        box = ET.SubElement(obj, 'bndbox')
        for tag, value in (('xmin', x0 + 1), ('ymin', y0 + 1),
                           ('xmax', x1 + 1), ('ymax', y1 + 1)):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding='utf-8') + b'\n'


def _coco_annotation(mask: np.ndarray, box: Box, ann_id: int, image_id: int,
                     category_id: int) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    x0, y0, x1, y1 = box
    return dict(
        id=ann_id,
        image_id=image_id,
        category_id=category_id,
        bbox=[float(x0),
              float(y0),
              float(x1 - x0 + 1),
              float(y1 - y0 + 1)],
        area=float(mask_utils.area(rle)),
        segmentation=rle,
        iscrowd=0)


def _readme(seed: int, num_train: int, num_val: int, min_size: int,
            max_size: int) -> str:
    classes = ', '.join(SYNTHETIC_CLASSES)
    return f"""# bana-mm synthetic box-supervised segmentation dataset

Generated by `bana_mm.datagen.generate_synthetic_dataset` (seed {seed}); regenerate with

    python tools/make_synthetic_dataset.py OUT_DIR --num-train {num_train} --num-val {num_val} \\
        --seed {seed} --min-size {min_size} --max-size {max_size}

Cluttered scenes with 1-4 textured, non-rectangular objects each (later objects occlude earlier
ones); {num_train} train and {num_val} val images, sides in [{min_size}, {max_size}] pixels.
Classes (label 1..{len(SYNTHETIC_CLASSES)}): {classes}.

Layout (PASCAL VOC style + COCO json):
- `JPEGImages/<id>.jpg`, `Annotations/<id>.xml` (1-based inclusive boxes of the visible masks)
- `SegmentationClass/<id>.png`, `SegmentationObject/<id>.png` (VOC palette PNGs, 0 = background)
- `ImageSets/Segmentation/{{train,val,trainval}}.txt` (same lists in `ImageSets/Main/`)
- `annotations/instances_{{train,val}}.json` (COCO, RLE masks, `file_name` relative to this folder)
- `class_names.txt` (`background` then the class names)
"""


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
def _validate(num_train: int, num_val: int, seed: int, min_size: int,
              max_size: int) -> None:
    for name, value in (('num_train', num_train), ('num_val', num_val),
                        ('seed', seed), ('min_size', min_size), ('max_size',
                                                                 max_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f'{name} must be an int, got {value!r}')
    if num_train <= 0 or num_val <= 0:
        raise ValueError(
            f'num_train and num_val must be positive, got {num_train} and {num_val}'
        )
    if seed < 0:
        raise ValueError(f'seed must be non-negative, got {seed}')
    if min_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f'min_size must be >= {MIN_IMAGE_SIZE}, got {min_size}')
    if min_size > max_size:
        raise ValueError(
            f'min_size ({min_size}) must not exceed max_size ({max_size})')


def generate_synthetic_dataset(out_dir: Union[str, os.PathLike],
                               num_train: int = 48,
                               num_val: int = 16,
                               seed: int = 0,
                               min_size: int = 160,
                               max_size: int = 240) -> Dict[str, object]:
    """Generate the synthetic dataset into ``out_dir`` (created if needed; files are overwritten).

    Image ``syn_%06d`` with index ``i`` (train first, then val) has COCO ``image_id`` ``i``.

    Returns:
        dict with ``root`` (str), ``num_train``, ``num_val``, ``classes`` (tuple of names) and
        ``num_objects`` (total number of annotated instances).
    """
    _validate(num_train, num_val, seed, min_size, max_size)
    root = Path(out_dir)
    dirs = {
        name: root / name
        for name in ('JPEGImages', 'Annotations', 'SegmentationClass',
                     'SegmentationObject', 'ImageSets/Segmentation',
                     'ImageSets/Main', 'annotations')
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)

    categories = [
        dict(id=i, name=name, supercategory='shape')
        for i, name in enumerate(SYNTHETIC_CLASSES, start=1)
    ]
    split_of = ['train'] * num_train + ['val'] * num_val
    ids: Dict[str, List[str]] = {split: [] for split in SPLITS}
    coco: Dict[str, dict] = {
        split: dict(images=[], annotations=[], categories=categories)
        for split in SPLITS
    }
    num_objects = 0
    for index, split in enumerate(split_of):
        rng = np.random.default_rng([seed, index])
        size = (int(rng.integers(min_size, max_size + 1)),
                int(rng.integers(min_size, max_size + 1)))
        image, inst, labels = _render_scene(rng, size)
        image_id = f'syn_{index:06d}'
        masks = [inst == k for k in range(1, len(labels) + 1)]
        boxes = [_tight_box(m) for m in masks]

        atomic_write_bytes(
            dirs['JPEGImages'] / f'{image_id}.jpg',
            _encode_image(
                Image.fromarray(image), 'JPEG', quality=JPEG_QUALITY))
        lut = np.array([0] + [label + 1 for label in labels], np.uint8)
        atomic_write_bytes(dirs['SegmentationClass'] / f'{image_id}.png',
                           label_png_bytes(lut[inst]))
        atomic_write_bytes(dirs['SegmentationObject'] / f'{image_id}.png',
                           label_png_bytes(inst))
        atomic_write_bytes(
            dirs['Annotations'] / f'{image_id}.xml',
            _voc_xml(image_id, size, [(SYNTHETIC_CLASSES[label], box)
                                      for label, box in zip(labels, boxes)]))

        data = coco[split]
        data['images'].append(
            dict(
                id=index,
                file_name=f'JPEGImages/{image_id}.jpg',
                height=size[0],
                width=size[1]))
        for mask, box, label in zip(masks, boxes, labels):
            data['annotations'].append(
                _coco_annotation(mask, box,
                                 len(data['annotations']) + 1, index,
                                 label + 1))
        ids[split].append(image_id)
        num_objects += len(labels)

    lists = dict(
        train=ids['train'], val=ids['val'], trainval=ids['train'] + ids['val'])
    for split, names in lists.items():
        text = ''.join(f'{n}\n' for n in names).encode()
        for folder in ('ImageSets/Segmentation', 'ImageSets/Main'):
            atomic_write_bytes(dirs[folder] / f'{split}.txt', text)
    for split in SPLITS:
        atomic_write_bytes(dirs['annotations'] / f'instances_{split}.json',
                           json.dumps(coco[split]).encode())
    atomic_write_bytes(
        root / 'class_names.txt',
        ''.join(f'{n}\n'
                for n in ('background', ) + SYNTHETIC_CLASSES).encode())
    atomic_write_bytes(
        root / 'README.md',
        _readme(seed, num_train, num_val, min_size, max_size).encode())
    return dict(
        root=str(root),
        num_train=num_train,
        num_val=num_val,
        classes=SYNTHETIC_CLASSES,
        num_objects=num_objects)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Command-line entry point; prints a one-line summary."""
    parser = argparse.ArgumentParser(
        description='Generate the synthetic box-supervised segmentation '
        'dataset.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='example: python tools/make_synthetic_dataset.py '
        'data/synthetic --num-train 48 --num-val 16 --seed 0')
    parser.add_argument(
        'out_dir', help='output folder (VOC layout + COCO json)')
    parser.add_argument('--num-train', type=int, default=48)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--min-size', type=int, default=160)
    parser.add_argument('--max-size', type=int, default=240)
    args = parser.parse_args(argv)
    try:
        summary = generate_synthetic_dataset(args.out_dir, args.num_train,
                                             args.num_val, args.seed,
                                             args.min_size, args.max_size)
    except ValueError as err:
        parser.error(str(err))
    print(
        f"wrote {summary['num_train']} train + {summary['num_val']} val images "
        f"({summary['num_objects']} objects, classes: {', '.join(summary['classes'])}) "
        f"to {summary['root']}")
    return summary


if __name__ == '__main__':
    main()
