"""Tests for the embedded synthetic dataset generator (bana_mm.datagen)."""
import json
import runpy
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from bana_mm.datagen import (SYNTHETIC_CLASSES, generate_synthetic_dataset,
                             synthetic)

REPO = Path(__file__).resolve().parents[1]
NUM_TRAIN, NUM_VAL = 16, 8


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> Tuple[Path, dict]:
    root = tmp_path_factory.mktemp('syn')
    summary = generate_synthetic_dataset(
        root, num_train=NUM_TRAIN, num_val=NUM_VAL, seed=3)
    return root, summary


def _read_ids(path: Path) -> List[str]:
    return path.read_text().split()


def _all_ids(root: Path) -> List[str]:
    return _read_ids(root / 'ImageSets/Segmentation/trainval.txt')


def _load(root: Path, image_id: str) -> Dict[str, object]:
    """Image, label maps and XML objects [(name, (xmin, ymin, xmax, ymax))] of
    one sample."""
    xml = ET.parse(root / 'Annotations' / f'{image_id}.xml').getroot()
    keys = ('xmin', 'ymin', 'xmax', 'ymax')
    objects = [(o.findtext('name'),
                tuple(int(o.findtext(f'bndbox/{k}')) for k in keys))
               for o in xml.findall('object')]
    return dict(
        xml=xml,
        objects=objects,
        image=np.asarray(Image.open(root / 'JPEGImages' / f'{image_id}.jpg')),
        cls_png=Image.open(root / 'SegmentationClass' / f'{image_id}.png'),
        obj_png=Image.open(root / 'SegmentationObject' / f'{image_id}.png'))


def _tight_box(mask: np.ndarray) -> Tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


def _boxes_overlap(a, b) -> bool:
    return min(a[2], b[2]) >= max(a[0], b[0]) and min(a[3], b[3]) >= max(
        a[1], b[1])


def _snapshot(root: Path) -> Dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob('*')) if p.is_file()
    }


def test_deterministic_for_seed(tmp_path):
    kwargs = dict(num_train=3, num_val=2, min_size=96, max_size=128)
    generate_synthetic_dataset(tmp_path / 'a', seed=7, **kwargs)
    generate_synthetic_dataset(tmp_path / 'b', seed=7, **kwargs)
    generate_synthetic_dataset(tmp_path / 'c', seed=8, **kwargs)
    a, b, c = (_snapshot(tmp_path / name) for name in 'abc')
    assert a == b
    assert set(a) == set(c)
    jpgs = [k for k in a if k.startswith('JPEGImages/')]
    assert len(jpgs) == 5
    assert all(a[k] != c[k] for k in jpgs)


def test_layout_and_summary(dataset):
    root, summary = dataset
    assert summary == dict(
        root=str(root),
        num_train=NUM_TRAIN,
        num_val=NUM_VAL,
        classes=SYNTHETIC_CLASSES,
        num_objects=summary['num_objects'])
    assert 5 <= len(SYNTHETIC_CLASSES) and len(
        set(SYNTHETIC_CLASSES)) == len(SYNTHETIC_CLASSES)
    assert all(name.islower() and name.isalpha() for name in SYNTHETIC_CLASSES)
    assert _read_ids(root /
                     'class_names.txt') == ['background', *SYNTHETIC_CLASSES]
    assert 'seed 3' in (root / 'README.md').read_text()
    ids = _all_ids(root)
    assert ids == [f'syn_{i:06d}' for i in range(NUM_TRAIN + NUM_VAL)]
    for image_id in ids:
        for sub, ext in (('JPEGImages', 'jpg'), ('Annotations', 'xml'),
                         ('SegmentationClass', 'png'), ('SegmentationObject',
                                                        'png')):
            assert (root / sub / f'{image_id}.{ext}').is_file()
    assert not [p for p in root.rglob('*') if p.name.endswith('.tmp')]
    num_xml_objects = sum(len(_load(root, i)['objects']) for i in ids)
    assert summary['num_objects'] == num_xml_objects


def test_splits_partition_ids(dataset):
    root, _ = dataset
    for folder in ('Segmentation', 'Main'):
        lists = {
            s: _read_ids(root / 'ImageSets' / folder / f'{s}.txt')
            for s in ('train', 'val', 'trainval')
        }
        assert len(lists['train']) == NUM_TRAIN and len(
            lists['val']) == NUM_VAL
        assert not set(lists['train']) & set(lists['val'])
        assert sorted(lists['train'] + lists['val']) == sorted(
            lists['trainval']) == _all_ids(root)


def test_voc_annotations_match_masks(dataset):
    root, _ = dataset
    voc1, voc2 = tuple(synthetic.voc_palette()[1]), tuple(
        synthetic.voc_palette()[2])
    assert (voc1, voc2) == ((128, 0, 0), (0, 128, 0))
    for image_id in _all_ids(root):
        s = _load(root, image_id)
        h, w = s['image'].shape[:2]
        assert s['image'].shape == (h, w,
                                    3) and 160 <= h <= 240 and 160 <= w <= 240
        xml = s['xml']
        assert xml.findtext('filename') == f'{image_id}.jpg' and xml.findtext(
            'segmented') == '1'
        assert (int(xml.findtext('size/width')),
                int(xml.findtext('size/height')),
                int(xml.findtext('size/depth'))) == (w, h, 3)
        for o in xml.findall('object'):
            flags = (o.findtext('pose'), o.findtext('truncated'),
                     o.findtext('difficult'))
            assert flags == ('Unspecified', '0', '0')
        for png in (s['cls_png'], s['obj_png']):
            assert png.mode == 'P' and png.size == (w, h)
            assert png.getpalette()[:9] == [0, 0, 0, *voc1, *voc2]
        inst, cls = np.asarray(s['obj_png']), np.asarray(s['cls_png'])
        objects = s['objects']
        assert 1 <= len(objects) <= 4
        assert set(np.unique(inst)) <= set(range(len(objects) + 1))
        labels = np.array(
            [0] + [SYNTHETIC_CLASSES.index(name) + 1 for name, _ in objects])
        np.testing.assert_array_equal(cls, labels[inst])
        for k, (_, box) in enumerate(objects, start=1):
            mask = inst == k
            assert mask.sum() >= max(64, 0.01 * h *
                                     w)  # tiny occluded leftovers are removed
            x0, y0, x1, y1 = _tight_box(mask)
            assert box == (x0 + 1, y0 + 1, x1 + 1, y1 + 1)


def test_coco_matches_voc(dataset):
    root, _ = dataset
    ids = _all_ids(root)
    for split, expected in (('train', ids[:NUM_TRAIN]), ('val',
                                                         ids[NUM_TRAIN:])):
        path = root / 'annotations' / f'instances_{split}.json'
        coco = COCO(str(path))
        raw = json.loads(path.read_text())
        assert [c['id'] for c in raw['categories']
                ] == list(range(1,
                                len(SYNTHETIC_CLASSES) + 1))
        assert [c['name']
                for c in raw['categories']] == list(SYNTHETIC_CLASSES)
        assert len({a['id']
                    for a in raw['annotations']}) == len(raw['annotations'])
        assert [Path(im['file_name']).stem for im in raw['images']] == expected
        for im in raw['images']:
            assert isinstance(im['id'],
                              int) and (root / im['file_name']).is_file()
            s = _load(root, Path(im['file_name']).stem)
            inst = np.asarray(s['obj_png'])
            assert (im['height'], im['width']) == inst.shape
            anns = coco.loadAnns(coco.getAnnIds(imgIds=im['id']))
            assert len(anns) == len(s['objects'])
            for k, (ann, (name, box)) in enumerate(
                    zip(anns, s['objects']), start=1):
                assert ann['iscrowd'] == 0 and SYNTHETIC_CLASSES[
                    ann['category_id'] - 1] == name
                assert isinstance(ann['segmentation']['counts'], str)
                mask = mask_utils.decode(ann['segmentation'])
                np.testing.assert_array_equal(mask, inst == k)
                np.testing.assert_array_equal(coco.annToMask(ann), mask)
                assert ann['area'] == float(mask.sum())
                x0, y0, x1, y1 = box
                assert ann['bbox'] == [
                    x0 - 1.0, y0 - 1.0,
                    float(x1 - x0 + 1),
                    float(y1 - y0 + 1)
                ]


def test_objects_do_not_fill_boxes_and_overlap(dataset):
    root, _ = dataset
    ratios, overlapping = [], 0
    for image_id in _all_ids(root):
        s = _load(root, image_id)
        inst = np.asarray(s['obj_png'])
        boxes = [box for _, box in s['objects']]
        for k, (x0, y0, x1, y1) in enumerate(boxes, start=1):
            ratios.append((inst == k).sum() / ((x1 - x0 + 1) * (y1 - y0 + 1)))
        overlapping += any(
            _boxes_overlap(a, b) for i, a in enumerate(boxes)
            for b in boxes[i + 1:])
    assert 0.3 < np.mean(ratios) < 0.9
    assert max(ratios) < 1.0  # no object is a filled rectangle
    assert overlapping >= 0.2 * (NUM_TRAIN + NUM_VAL)


def test_backgrounds_are_cluttered(dataset):
    root, _ = dataset
    means = []
    for image_id in _all_ids(root):
        s = _load(root, image_id)
        background = s['image'][np.asarray(s['obj_png']) == 0].astype(
            np.float64)
        assert background.std(axis=0).mean() > 8.0
        means.append(background.mean(axis=0))
    assert np.std(
        means, axis=0).mean() > 5.0  # background colours vary between images


@pytest.mark.parametrize('kwargs', [
    dict(num_train=0),
    dict(num_val=-1),
    dict(min_size=200, max_size=100),
    dict(min_size=32, max_size=48),
    dict(seed=-1)
])
def test_argument_errors(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_synthetic_dataset(tmp_path / 'out', **kwargs)
    assert not (tmp_path / 'out').exists()


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):

    def fail(*args):
        raise OSError('disk full')

    monkeypatch.setattr(synthetic.os, 'replace', fail)
    with pytest.raises(OSError):
        generate_synthetic_dataset(tmp_path, num_train=1, num_val=1)
    assert [p for p in tmp_path.rglob('*') if p.is_file()] == []


def test_cli_tool(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'cli'
    argv = [
        str(out), '--num-train', '2', '--num-val', '1', '--seed', '4',
        '--min-size', '80', '--max-size', '90'
    ]
    monkeypatch.setattr(sys, 'argv', ['make_synthetic_dataset.py', *argv])
    runpy.run_path(
        str(REPO / 'tools' / 'make_synthetic_dataset.py'), run_name='__main__')
    printed = capsys.readouterr().out.strip()
    assert len(printed.splitlines()) == 1 and str(
        out) in printed and '2 train + 1 val' in printed
    assert _read_ids(out / 'ImageSets/Main/trainval.txt') == [
        'syn_000000', 'syn_000001', 'syn_000002'
    ]
    assert all(80 <= v <= 90
               for v in Image.open(out / 'JPEGImages/syn_000002.jpg').size)
    with pytest.raises(SystemExit) as err:
        synthetic.main([str(out), '--min-size', '300'])
    assert err.value.code == 2
