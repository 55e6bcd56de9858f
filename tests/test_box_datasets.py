"""Bad-input behaviour of the box datasets and the stage-1 data pipeline.

Every test builds a small synthetic dataset (``bana_mm.datagen``), corrupts a
copy of it and checks that the problem is either a clear error naming the
offending file, or a documented skip/drop with a warning naming it.

Warnings go through mmengine's ``print_log(logger='current')``. ``MMLogger``
instances are not attached to the ``logging`` hierarchy (no parent), so
pytest's ``caplog`` never sees them; :func:`captured_log` attaches a handler
to the current ``MMLogger`` instead.
"""
import json
import logging
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import TRANSFORMS, init_default_scope

import bana_mm.det  # noqa: F401  (registers the datasets and transforms)
from bana_mm.core.boxes import BoxAnnotationError
from bana_mm.datagen import SYNTHETIC_CLASSES, generate_synthetic_dataset
from bana_mm.det import CocoBoxDataset, VOCBoxDataset

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / 'configs/bana/bap_vgg16_tiny.py'
NUM_TRAIN, NUM_VAL = 4, 2
LIST = 'ImageSets/Segmentation/custom.txt'

VOC_OBJECT = """  <object>
    <name>{name}</name>
    <difficult>{difficult}</difficult>
    <bndbox>
      <xmin>{xmin}</xmin>
      <ymin>{ymin}</ymin>
      <xmax>{xmax}</xmax>
      <ymax>{ymax}</ymax>
    </bndbox>
  </object>
"""


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


@pytest.fixture(scope='module')
def pristine(tmp_path_factory) -> Path:
    """A generated dataset that tests never modify (copy it first)."""
    root = tmp_path_factory.mktemp('syn_pristine')
    generate_synthetic_dataset(
        root, num_train=NUM_TRAIN, num_val=NUM_VAL, seed=1)
    return root


@pytest.fixture
def root(pristine, tmp_path) -> Path:
    """A private, corruptible copy of the generated dataset."""
    dst = tmp_path / 'syn'
    shutil.copytree(pristine, dst)
    return dst


@contextmanager
def captured_log() -> Iterator[List[logging.LogRecord]]:
    """Collect what mmengine's current logger emits (``print_log``)."""
    records: List[logging.LogRecord] = []

    class _Handler(logging.Handler):

        def emit(self, record):
            records.append(record)

    logger = MMLogger.get_current_instance()
    handler = _Handler(level=logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def warnings_of(records: Sequence[logging.LogRecord]) -> List[str]:
    return [r.getMessage() for r in records if r.levelno == logging.WARNING]


def ids_of(root: Path, split: str = 'train') -> List[str]:
    return (root / f'ImageSets/Segmentation/{split}.txt').read_text().split()


def write_list(root: Path, ids: Sequence[str]) -> None:
    (root / LIST).write_text(''.join(f'{i}\n' for i in ids))


def image_size(root: Path, img_id: str) -> Tuple[int, int]:
    """(width, height) from the generated XML."""
    import xml.etree.ElementTree as ET
    tree = ET.parse(root / 'Annotations' / f'{img_id}.xml').getroot()
    return (int(tree.find('size/width').text),
            int(tree.find('size/height').text))


def write_xml(root: Path,
              img_id: str,
              objects: Sequence[dict],
              size: Optional[Tuple[int, int]] = None) -> Path:
    """Overwrite ``Annotations/<img_id>.xml`` with the given objects
    (dicts with name, xmin, ymin, xmax, ymax and optional difficult)."""
    width, height = size or image_size(root, img_id)
    body = ''.join(
        VOC_OBJECT.format(**dict(dict(difficult=0), **obj)) for obj in objects)
    path = root / 'Annotations' / f'{img_id}.xml'
    path.write_text(
        f'<annotation>\n  <filename>{img_id}.jpg</filename>\n'
        f'  <size>\n    <width>{width}</width>\n    <height>{height}</height>'
        f'\n    <depth>3</depth>\n  </size>\n{body}</annotation>\n')
    return path


def voc(root: Path, ann_file: str = LIST, **kwargs) -> VOCBoxDataset:
    kwargs.setdefault('pipeline', [])
    return VOCBoxDataset(
        data_root=str(root),
        ann_file=ann_file,
        metainfo=dict(classes=SYNTHETIC_CLASSES),
        **kwargs)


def box_list(info: dict) -> List[List[float]]:
    return [list(i['bbox']) for i in info['instances']]


# --------------------------------------------------------------------------- #
# VOC
# --------------------------------------------------------------------------- #
def test_voc_generated_dataset_loads_cleanly(root):
    with captured_log() as records:
        ds = voc(root, 'ImageSets/Segmentation/train.txt')
    assert len(ds) == NUM_TRAIN
    assert warnings_of(records) == []
    for info in ds:
        assert info['instances'], info['img_path']
        for inst in info['instances']:
            x1, y1, x2, y2 = inst['bbox']
            assert 0 <= x1 < x2 <= info['width']
            assert 0 <= y1 < y2 <= info['height']
            assert 0 <= inst['bbox_label'] < len(SYNTHETIC_CLASSES)
            assert inst['ignore_flag'] == 0


def test_voc_one_based_boxes_become_continuous(root):
    img_id = ids_of(root)[0]
    write_xml(
        root,
        img_id,
        [
            dict(name='disc', xmin=1, ymin=1, xmax=10, ymax=20),
            dict(name='star', xmin=5, ymin=7, xmax=5, ymax=7),  # one pixel
            dict(name='blob', xmin=3, ymin=4, xmax=30, ymax=40, difficult=1),
        ])
    write_list(root, [img_id])
    info = voc(root)[0]
    assert box_list(info) == [[0.0, 0.0, 10.0, 20.0], [4.0, 6.0, 5.0, 7.0],
                              [2.0, 3.0, 30.0, 40.0]]
    labels = [i['bbox_label'] for i in info['instances']]
    assert labels == [
        SYNTHETIC_CLASSES.index(n) for n in ('disc', 'star', 'blob')
    ]
    # Difficult objects are kept as ordinary boxes.
    assert [i['ignore_flag'] for i in info['instances']] == [0, 0, 0]


def test_voc_box_partly_outside_is_clipped(root):
    img_id = ids_of(root)[0]
    w, h = image_size(root, img_id)
    write_xml(root, img_id, [
        dict(name='ring', xmin=-9, ymin=11, xmax=w + 20, ymax=h + 5),
        dict(name='disc', xmin=21, ymin=-4, xmax=40, ymax=30),
    ])
    write_list(root, [img_id])
    with captured_log() as records:
        info = voc(root)[0]
    assert box_list(info) == [[0.0, 10.0, float(w),
                               float(h)], [20.0, 0.0, 40.0, 30.0]]
    assert warnings_of(records) == []  # clipping alone is not worth a warning


@pytest.mark.parametrize('bad',
                         ['right', 'below', 'left', 'zero_width', 'inverted'])
def test_voc_empty_box_is_dropped_with_warning(root, bad):
    img_id = ids_of(root)[0]
    w, h = image_size(root, img_id)
    bad_box = dict(
        right=dict(xmin=w + 5, ymin=10, xmax=w + 30, ymax=40),
        below=dict(xmin=10, ymin=h + 1, xmax=40, ymax=h + 50),
        left=dict(xmin=-30, ymin=10, xmax=-5, ymax=40),
        # 1-based xmax = xmin - 1 is zero width once continuous.
        zero_width=dict(xmin=12, ymin=10, xmax=11, ymax=40),
        inverted=dict(xmin=50, ymin=10, xmax=20, ymax=40),
    )[bad]
    xml = write_xml(root, img_id, [
        dict(name='disc', xmin=1, ymin=1, xmax=10, ymax=10),
        dict(name='star', **bad_box),
        dict(name='ring', xmin=11, ymin=11, xmax=20, ymax=20),
    ])
    write_list(root, [img_id])
    with captured_log() as records:
        info = voc(root)[0]
    assert box_list(info) == [[0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 20.0, 20.0]]
    assert [i['bbox_label'] for i in info['instances']] == [
        SYNTHETIC_CLASSES.index('disc'),
        SYNTHETIC_CLASSES.index('ring')
    ]
    warns = warnings_of(records)
    assert len(warns) == 1, warns
    assert str(xml) in warns[0] and 'box #1' in warns[0]


@pytest.mark.parametrize('case', ['all_dropped', 'no_object'])
def test_voc_image_without_usable_box(root, case):
    ids = ids_of(root)
    bad_id = ids[1]
    w, h = image_size(root, bad_id)
    objects = [dict(name='disc', xmin=w + 1, ymin=1, xmax=w + 9, ymax=9)] \
        if case == 'all_dropped' else []
    write_xml(root, bad_id, objects)
    write_list(root, ids)
    img_path = str(root / 'JPEGImages' / f'{bad_id}.jpg')

    with captured_log() as records:
        train = voc(root)
    assert [info['img_id']
            for info in train] == [i for i in ids if i != bad_id]
    warns = warnings_of(records)
    assert any(img_path in m and 'skipped' in m for m in warns), warns

    with captured_log() as records:
        test = voc(root, test_mode=True)
    assert [info['img_id'] for info in test] == ids
    assert test[1]['img_path'] == img_path
    assert test[1]['instances'] == []
    assert not any('skipped' in m for m in warnings_of(records))


def test_voc_unknown_class_is_an_error(root):
    img_id = ids_of(root)[0]
    xml = write_xml(root, img_id, [
        dict(name='disc', xmin=1, ymin=1, xmax=10, ymax=10),
        dict(name='hexagon', xmin=1, ymin=1, xmax=10, ymax=10),
    ])
    write_list(root, [img_id])
    with pytest.raises(BoxAnnotationError) as err:
        voc(root)
    assert str(xml) in str(err.value)
    assert 'hexagon' in str(err.value)


@pytest.mark.parametrize('folder,suffix', [('JPEGImages', '.jpg'),
                                           ('Annotations', '.xml')])
def test_voc_missing_file_is_an_error(root, folder, suffix):
    img_id = ids_of(root)[1]
    missing = root / folder / f'{img_id}{suffix}'
    missing.unlink()
    with pytest.raises(FileNotFoundError) as err:
        voc(root, 'ImageSets/Segmentation/train.txt')
    assert str(missing) in str(err.value)


def test_voc_missing_image_list_is_an_error(root):
    with pytest.raises(FileNotFoundError) as err:
        voc(root, 'ImageSets/Segmentation/nope.txt')
    assert str(root / 'ImageSets/Segmentation/nope.txt') in str(err.value)


@pytest.mark.parametrize(
    'text',
    [
        '<annotation><size><width>10</width>',  # truncated: not XML
        '',  # empty file
        # no size
        '<annotation><object><name>disc</name></object></annotation>',
        ('<annotation><size><width>50</width><height>50</height></size>'
         '<object><name>disc</name></object></annotation>'),  # no bndbox
        ('<annotation><size><width>50</width><height>50</height></size>'
         '<object><name>disc</name><bndbox><xmin>a</xmin><ymin>1</ymin>'
         '<xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>'),
    ],
    ids=['truncated', 'empty', 'no_size', 'no_bndbox', 'not_a_number'])
def test_voc_malformed_xml_is_an_error(root, text):
    img_id = ids_of(root)[0]
    xml = root / 'Annotations' / f'{img_id}.xml'
    xml.write_text(text)
    write_list(root, [img_id])
    with pytest.raises(BoxAnnotationError) as err:
        voc(root)
    assert str(xml) in str(err.value)


def test_voc_corrupt_image_bytes_fail_in_the_pipeline(root):
    ids = ids_of(root)
    img = root / 'JPEGImages' / f'{ids[0]}.jpg'
    img.write_bytes(b'\xff\xd8 this is not a jpeg ' * 20)
    write_list(root, ids[:2])
    ds = voc(
        root,
        test_mode=True,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs'),
        ])
    assert ds[1]['inputs'].shape[0] == 3  # the intact image still loads
    # mmcv's LoadImageFromFile: cv2 decodes garbage to None, then
    # ``AssertionError: failed to load image: <path>``.
    with pytest.raises(Exception) as err:
        ds[0]
    assert str(img) in str(err.value)


def test_voc_non_finite_coordinate_is_not_kept(root):
    img_id = ids_of(root)[0]
    xml = write_xml(root, img_id, [
        dict(name='disc', xmin='nan', ymin=1, xmax=10, ymax=10),
        dict(name='ring', xmin=11, ymin=11, xmax=20, ymax=20),
    ])
    write_list(root, [img_id])
    try:
        with captured_log() as records:
            info = voc(root)[0]
    except BoxAnnotationError as err:  # rejecting the file is fine too
        assert str(xml) in str(err)
        return
    assert box_list(info) == [[10.0, 10.0, 20.0, 20.0]]
    assert any(str(xml) in m for m in warnings_of(records))


# --------------------------------------------------------------------------- #
# COCO
# --------------------------------------------------------------------------- #
def load_coco(root: Path, split: str = 'train') -> dict:
    path = root / f'annotations/instances_{split}.json'
    return json.loads(path.read_text())


def coco(root: Path, data: dict, **kwargs) -> Tuple[CocoBoxDataset, Path]:
    ann = root / 'annotations/custom.json'
    ann.write_text(json.dumps(data))
    kwargs.setdefault('pipeline', [])
    ds = CocoBoxDataset(
        data_root=str(root),
        ann_file='annotations/custom.json',
        data_prefix=dict(img=str(root)),
        metainfo=dict(classes=SYNTHETIC_CLASSES),
        **kwargs)
    return ds, ann


def first_image(data: dict) -> Tuple[dict, List[dict]]:
    img = data['images'][0]
    return img, [a for a in data['annotations'] if a['image_id'] == img['id']]


def test_coco_generated_dataset_matches_voc(root):
    with captured_log() as records:
        ds, _ = coco(root, load_coco(root))
    assert warnings_of(records) == []
    by_voc = {
        info['img_id']: info
        for info in voc(root, 'ImageSets/Segmentation/train.txt')
    }
    assert len(ds) == NUM_TRAIN
    for info in ds:
        ref = by_voc[Path(info['img_path']).stem]
        assert info['img_path'] == ref['img_path']
        np.testing.assert_allclose(box_list(info), box_list(ref))
        assert [i['bbox_label'] for i in info['instances']] == \
            [i['bbox_label'] for i in ref['instances']]
        assert all('mask' in i for i in info['instances'])


def test_coco_unknown_category_is_an_error(root):
    data = load_coco(root)
    data['annotations'][0]['category_id'] = 99
    with pytest.raises(BoxAnnotationError) as err:
        coco(root, data)
    assert str(root / 'annotations/custom.json') in str(err.value)
    assert '99' in str(err.value)


def test_coco_empty_boxes_dropped_and_partial_clipped(root):
    data = load_coco(root)
    img, anns = first_image(data)
    w = img['width']
    anns[0]['bbox'] = [10, 10, 0, 20]  # zero width
    anns[1]['bbox'] = [w + 5, 10, 20, 20]  # fully outside
    anns[2]['bbox'] = [-5, -6, 20, 30]  # partly outside: clipped
    kept = [[0.0, 0.0, 15.0, 24.0]] + [[
        a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
        a['bbox'][1] + a['bbox'][3]
    ] for a in anns[3:]]
    with captured_log() as records:
        ds, ann = coco(root, data)
    info = next(i for i in ds if i['img_id'] == img['id'])
    np.testing.assert_allclose(box_list(info), kept)
    warns = [m for m in warnings_of(records) if 'dropped' in m]
    assert len(warns) == 2, warns
    assert all(str(ann) in m and img['file_name'] in m for m in warns)


def test_coco_crowd_is_ignored_not_dropped(root):
    data = load_coco(root)
    img, anns = first_image(data)
    anns[0]['iscrowd'] = 1
    ds, _ = coco(root, data)
    info = next(i for i in ds if i['img_id'] == img['id'])
    assert [i['ignore_flag'] for i in info['instances']] == \
        [1] + [0] * (len(anns) - 1)


def test_coco_image_with_only_crowd_is_skipped_for_training(root):
    data = load_coco(root)
    img, anns = first_image(data)
    for a in anns:
        a['iscrowd'] = 1
    with captured_log() as records:
        train, _ = coco(root, data)
    assert img['id'] not in [i['img_id'] for i in train]
    assert len(train) == NUM_TRAIN - 1
    img_path = str(Path(root) / img['file_name'])
    assert any(img_path in m and 'skipped' in m
               for m in warnings_of(records)), warnings_of(records)
    test, _ = coco(root, data, test_mode=True)
    assert len(test) == NUM_TRAIN


@pytest.mark.parametrize(
    'corrupt', ['no_bbox', 'short_bbox', 'image_without_width', 'not_json'])
def test_coco_malformed_json_names_the_file(root, corrupt):
    data = load_coco(root)
    if corrupt == 'no_bbox':
        del data['annotations'][0]['bbox']
    elif corrupt == 'short_bbox':
        data['annotations'][0]['bbox'] = [1, 2, 3]
    elif corrupt == 'image_without_width':
        del data['images'][0]['width']
    ann = root / 'annotations/custom.json'
    with pytest.raises(Exception) as err:
        if corrupt == 'not_json':
            ann.write_text('{"images": [')
            CocoBoxDataset(
                data_root=str(root),
                ann_file='annotations/custom.json',
                data_prefix=dict(img=str(root)),
                pipeline=[],
                metainfo=dict(classes=SYNTHETIC_CLASSES))
        else:
            coco(root, data)
    assert str(ann) in str(err.value)


def test_coco_missing_image_is_an_error(root):
    data = load_coco(root)
    img, _ = first_image(data)
    (root / img['file_name']).unlink()
    with pytest.raises(FileNotFoundError) as err:
        coco(root, data)
    assert str(root / img['file_name']) in str(err.value)


# --------------------------------------------------------------------------- #
# Issue 10: silent wrong output (3-5) and errors that name the cause (7)
# --------------------------------------------------------------------------- #
def _labels_by_name(ds: CocoBoxDataset, data: dict) -> None:
    """Every box's label names the category of its annotation."""
    names = {c['id']: c['name'] for c in data['categories']}
    cats = {}
    for ann in data['annotations']:
        cats.setdefault(ann['image_id'], []).append(names[ann['category_id']])
    classes = ds.metainfo['classes']
    checked = 0
    for info in ds:
        got = [classes[i['bbox_label']] for i in info['instances']]
        assert got == cats[info['img_id']], info['img_path']
        checked += len(got)
    assert checked == len(data['annotations'])


@pytest.mark.parametrize('shuffle', ['list_order', 'ids_reversed'])
def test_coco_categories_out_of_order_map_by_name(root, shuffle):
    """Issue 10.3: label i is classes[i] whatever the json's order."""
    data = load_coco(root)
    cats = data['categories']
    if shuffle == 'list_order':  # same ids, listed in another order
        data['categories'] = cats[2:] + cats[:2]
    else:  # new ids in reverse class order, listed by id
        new_id = {c['id']: 10 + len(cats) - k for k, c in enumerate(cats)}
        for ann in data['annotations']:
            ann['category_id'] = new_id[ann['category_id']]
        data['categories'] = sorted(
            [dict(c, id=new_id[c['id']]) for c in cats], key=lambda c: c['id'])
    assert [c['name'] for c in data['categories']] != list(SYNTHETIC_CLASSES)
    ds, _ = coco(root, data)
    _labels_by_name(ds, data)
    assert [ds.metainfo['classes'][ds.cat2label[c]] for c in ds.cat_ids] == \
        list(SYNTHETIC_CLASSES)


def test_coco_category_names_checked(root):
    data = load_coco(root)
    # A class without a category: the others keep their labels, a warning.
    missing = data['categories'].pop(0)
    data['annotations'] = [
        a for a in data['annotations'] if a['category_id'] != missing['id']
    ]
    with captured_log() as records:
        ds, ann = coco(root, data, test_mode=True)
    _labels_by_name(ds, data)
    assert any(
        str(ann) in m and missing['name'] in m
        for m in warnings_of(records)), warnings_of(records)
    # Two categories with one name: an error naming the file and the name.
    data['categories'].append(dict(id=77, name=data['categories'][0]['name']))
    with pytest.raises(BoxAnnotationError) as err:
        coco(root, data)
    assert str(ann) in str(err.value)
    assert data['categories'][0]['name'] in str(err.value)


def _set_xml_size(xml: Path, width: int, height: int) -> None:
    text = xml.read_text()
    import re
    text = re.sub(r'<width>\d+</width>', f'<width>{width}</width>', text)
    text = re.sub(r'<height>\d+</height>', f'<height>{height}</height>', text)
    xml.write_text(text)


@pytest.mark.parametrize('declared', ['smaller', 'larger'])
def test_voc_size_disagreeing_with_image_uses_the_image(root, declared):
    """Issue 10.4: boxes are clipped to the decoded image, with a warning."""
    img_id = ids_of(root)[0]
    w, h = image_size(root, img_id)
    xml = write_xml(root, img_id, [
        dict(name='disc', xmin=1, ymin=1, xmax=120, ymax=100),
        dict(name='ring', xmin=w - 9, ymin=h - 9, xmax=w + 30, ymax=h + 30),
    ])
    size = (50, 40) if declared == 'smaller' else (w + 100, h + 100)
    _set_xml_size(xml, *size)
    write_list(root, [img_id])
    with captured_log() as records:
        info = voc(root)[0]
    assert (info['width'], info['height']) == (w, h)
    assert box_list(info) == [[0.0, 0.0, 120.0, 100.0],
                              [w - 10.0, h - 10.0,
                               float(w),
                               float(h)]]
    warns = warnings_of(records)
    assert len(warns) == 1, warns
    assert str(xml) in warns[0] and f'{size[0]}x{size[1]}' in warns[0]
    assert f'{w}x{h}' in warns[0]


def test_coco_size_disagreeing_with_image_uses_the_image(root):
    data = load_coco(root)
    img, anns = first_image(data)
    w, h = img['width'], img['height']
    img['width'], img['height'] = 50, 40
    anns[0]['bbox'] = [0, 0, 120, 100]
    with captured_log() as records:
        ds, ann = coco(root, data)
    info = next(i for i in ds if i['img_id'] == img['id'])
    assert (info['width'], info['height']) == (w, h)
    assert box_list(info)[0] == [0.0, 0.0, 120.0, 100.0]
    assert any(
        str(ann) in m and img['file_name'] in m and '50x40' in m
        for m in warnings_of(records)), warnings_of(records)


def test_voc_duplicate_ids_kept_once_with_one_warning(root):
    """Issue 10.5: a repeated id would be trained and labelled twice."""
    ids = ids_of(root)
    write_list(root, [ids[0], ids[1], ids[0], ids[2], ids[1], ids[0]])
    with captured_log() as records:
        ds = voc(root)
    assert [info['img_id'] for info in ds] == ids[:3]
    warns = [m for m in warnings_of(records) if 'more than once' in m]
    assert len(warns) == 1, warnings_of(records)
    assert str(root / LIST) in warns[0]
    assert ids[0] in warns[0] and ids[1] in warns[0]
    assert ids[2] not in warns[0]


def test_coco_duplicate_image_entries_kept_once(root):
    data = load_coco(root)
    data['images'].append(dict(data['images'][0]))
    with captured_log() as records:
        ds, ann = coco(root, data)
    assert len(ds) == NUM_TRAIN
    assert any(
        str(ann) in m and 'more than once' in m
        for m in warnings_of(records)), warnings_of(records)


def test_coco_duplicate_annotation_ids_name_the_file(root):
    data = load_coco(root)
    data['annotations'][1]['id'] = data['annotations'][0]['id']
    with pytest.raises(BoxAnnotationError) as err:
        coco(root, data)
    assert str(root / 'annotations/custom.json') in str(err.value)
    assert str(data['annotations'][0]['id']) in str(err.value)


@pytest.mark.parametrize('text', ['', '\n  \n'], ids=['empty', 'blank'])
def test_voc_empty_split_names_the_file(root, text):
    """Issue 10.7: not mmengine's 'need at least one array to concatenate'."""
    (root / LIST).write_text(text)
    with pytest.raises(ValueError) as err:
        voc(root)
    assert str(root / LIST) in str(err.value) and 'empty' in str(err.value)


def test_no_image_with_a_usable_box_names_the_file(root):
    ids = ids_of(root)
    for img_id in ids:
        write_xml(root, img_id, [])
    write_list(root, ids)
    with pytest.raises(BoxAnnotationError) as err:
        voc(root)
    assert str(root / LIST) in str(err.value)
    assert 'usable box' in str(err.value)
    assert len(voc(root, test_mode=True)) == len(ids)  # testing is fine

    data = load_coco(root)
    for ann in data['annotations']:
        ann['iscrowd'] = 1
    with pytest.raises(BoxAnnotationError) as err:
        coco(root, data)
    assert str(root / 'annotations/custom.json') in str(err.value)


@pytest.mark.parametrize('case',
                         ['no_images_key', 'empty_images', 'no_categories'])
def test_coco_without_images_or_categories_names_the_file(root, case):
    data = load_coco(root)
    if case == 'no_images_key':
        del data['images']
    elif case == 'empty_images':
        data['images'] = []
    else:
        del data['categories']
    with pytest.raises(BoxAnnotationError) as err:
        coco(root, data)
    assert str(root / 'annotations/custom.json') in str(err.value)
    assert ('images' if 'images' in case else 'categories') in str(err.value)


@pytest.mark.parametrize(
    'content', [b'', b'\xff\xd8\xff garbage' * 3],
    ids=['zero_bytes', 'not_decodable'])
def test_unreadable_image_at_loading_names_the_path(root, content):
    """Issue 10.7: not OpenCV's bare ``!buf.empty()``."""
    ids = ids_of(root)
    img = root / 'JPEGImages' / f'{ids[0]}.jpg'
    img.write_bytes(content)
    write_list(root, ids[:2])
    cfg = Config.fromfile(str(TINY_CONFIG))
    ds = voc(root, pipeline=cfg.train_pipeline)  # the real training pipeline
    # the good image loads; prepare_data, not ds[1]: when the random crop
    # leaves no box, __getitem__ retries a random index, maybe the bad one
    good = next(out for out in map(ds.prepare_data, [1] * 20) if out)
    assert good['inputs'].shape[0] == 3
    with pytest.raises(OSError) as err:
        ds.prepare_data(0)
    assert str(img) in str(err.value)
    assert ('0 bytes' if not content else 'cannot be decoded') in \
        str(err.value)


# --------------------------------------------------------------------------- #
# RandomRescale and the tiny training pipeline
# --------------------------------------------------------------------------- #
def test_random_rescale_doubles_image_and_boxes():
    from mmdet.structures.bbox import HorizontalBoxes
    rescale = TRANSFORMS.build(dict(type='RandomRescale', ratio_range=(2, 2)))
    img = np.random.default_rng(0).integers(0, 255, (30, 41, 3), np.uint8)
    boxes = np.array([[1.0, 2.0, 11.5, 22.0], [0.0, 0.0, 41.0, 30.0]],
                     np.float32)
    results = rescale(
        dict(
            img=img,
            img_shape=img.shape[:2],
            ori_shape=img.shape[:2],
            gt_bboxes=HorizontalBoxes(boxes),
            gt_bboxes_labels=np.array([0, 1])))
    assert results['img'].shape == (60, 82, 3)
    assert results['img_shape'] == (60, 82)
    assert np.allclose(results['scale_factor'], (2.0, 2.0))
    assert torch.allclose(results['gt_bboxes'].tensor,
                          torch.from_numpy(boxes) * 2)


@pytest.mark.parametrize('ratio_range', [(0, 1), (-1, 2), (2, 1), (1, 2, 3)])
def test_random_rescale_rejects_bad_ratio_range(ratio_range):
    with pytest.raises(ValueError):
        TRANSFORMS.build(dict(type='RandomRescale', ratio_range=ratio_range))


def test_tiny_train_pipeline_yields_crops_with_boxes_inside(root):
    from mmdet.registry import DATASETS
    cfg = Config.fromfile(str(TINY_CONFIG))
    crop_h, crop_w = cfg.crop_size
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(root)
    ds_cfg.ann_file = 'ImageSets/Segmentation/trainval.txt'
    ds = DATASETS.build(ds_cfg)
    assert len(ds) == NUM_TRAIN + NUM_VAL
    np.random.seed(0)
    for _ in range(3):
        for index in range(len(ds)):
            sample = ds[index]
            inputs, data_sample = sample['inputs'], sample['data_samples']
            _, height, width = inputs.shape
            assert height <= crop_h and width <= crop_w
            assert tuple(data_sample.img_shape) == (height, width)
            boxes = data_sample.gt_instances.bboxes.tensor
            assert boxes.shape[0] >= 1  # allow_negative_crop=False
            assert len(data_sample.gt_instances.labels) == boxes.shape[0]
            assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
            assert (boxes[:, 2] <= width).all()
            assert (boxes[:, 3] <= height).all()
            assert (boxes[:, 2] > boxes[:, 0]).all()
            assert (boxes[:, 3] > boxes[:, 1]).all()


def test_voc_box_conventions(tmp_path):
    """'voc' reads XML integers as 1-based inclusive pixels; 'authors' as
    the BANA code's 0-based slices [xmin:xmax] (docs/authors_comparison.md)."""
    from bana_mm.core.boxes import voc_box_to_xyxy
    assert voc_box_to_xyxy(3, 2, 7, 5) == (2.0, 1.0, 7.0, 5.0)
    assert voc_box_to_xyxy(3, 2, 7, 5, 'authors') == (3.0, 2.0, 7.0, 5.0)
    with pytest.raises(ValueError, match='box convention'):
        voc_box_to_xyxy(3, 2, 7, 5, 'coco')
