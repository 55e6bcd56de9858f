"""Stage-3 data path: Ycrf and Yret stay aligned with the image through
RandomResize, RandomCrop, RandomFlip, padding and batching; clear errors."""
import logging
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS, TRANSFORMS
from PIL import Image

import bana_mm.seg  # noqa: F401

BLOCK = 4


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _code_maps(h, w, seed):
    """Image whose blue channel codes a block id, Ycrf = id, Yret = id + 1
    (mod 200), so alignment is checkable after any geometric transform."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 200, (h // BLOCK + 1, w // BLOCK + 1))
    ids = np.kron(ids, np.ones((BLOCK, BLOCK), int))[:h, :w].astype(np.uint8)
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = ids  # BGR: channel 0 after loading
    return img, ids, ((ids.astype(int) + 1) % 200).astype(np.uint8)


@pytest.fixture
def code_root(tmp_path):
    root = tmp_path / 'voc'
    for sub in ('JPEGImages', 'SegmentationClass', 'pl/Ycrf', 'pl/Yret',
                'ImageSets/Segmentation'):
        os.makedirs(root / sub, exist_ok=True)
    ids = []
    for i, (h, w) in enumerate([(60, 84), (96, 72), (52, 52)]):
        img, crf, ret = _code_maps(h, w, i)
        name = f'im{i}'
        ids.append(name)
        # PNG "JPEG" path keeps the codes exact (the loader reads by content)
        Image.fromarray(img[..., ::-1]).save(root / 'JPEGImages' /
                                             f'{name}.png')
        Image.fromarray(crf, 'L').save(root / 'pl/Ycrf' / f'{name}.png')
        Image.fromarray(ret, 'L').save(root / 'pl/Yret' / f'{name}.png')
        gt = np.full((h, w), 7, np.uint8)
        Image.fromarray(gt,
                        'L').save(root / 'SegmentationClass' / f'{name}.png')
    (root / 'ImageSets/Segmentation/train.txt').write_text('\n'.join(ids))
    return str(root)


def _dataset(root, pipeline, **kwargs):
    return DATASETS.build(
        dict(
            type='PseudoLabelVOCDataset',
            data_root=root,
            metainfo=dict(classes=tuple(f'c{i}' for i in range(1, 200))),
            ann_file='ImageSets/Segmentation/train.txt',
            img_suffix='.png',
            pseudo_label_dir='pl',
            pipeline=pipeline,
            **kwargs))


PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabels'),
    dict(
        type='RandomResize',
        scale=(80, 80),
        ratio_range=(0.6, 1.6),
        keep_ratio=True,
        interpolation='nearest'),
    dict(type='RandomCrop', crop_size=(48, 56)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PadSegFields', size=(64, 64), pad_val=dict(img=0, seg=255)),
    dict(type='PackTwoMapSegInputs'),
]


def _check_aligned(img_code, crf, ret):
    valid = crf != 255
    assert valid.any()
    assert ((ret == 255) == ~valid).all()
    assert (ret[valid] == (crf[valid] + 1) % 200).all()
    assert (img_code[valid] == crf[valid]).all()


def test_two_maps_follow_every_transform_and_batching(code_root):
    torch.manual_seed(0)
    np.random.seed(0)
    ds = _dataset(code_root, PIPELINE)
    pre = MODELS.build(
        dict(
            type='TwoMapSegDataPreProcessor',
            mean=None,
            std=None,
            size=(72, 80),
            seg_pad_val=255))
    flips = set()
    for _ in range(6):
        batch = pseudo_collate([ds[i] for i in range(len(ds))])
        for inputs, sample in zip(batch['inputs'], batch['data_samples']):
            flips.add(bool(sample.flip))
            assert inputs.shape[1:] == (64, 64)  # PadSegFields
            _check_aligned(inputs[0].numpy(),
                           sample.gt_sem_seg.data[0].numpy(),
                           sample.gt_ret_seg.data[0].numpy())
        out = pre(batch, training=True)
        assert out['inputs'].shape == (3, 3, 72, 80)
        for x, sample in zip(out['inputs'], out['data_samples']):
            crf = sample.gt_sem_seg.data[0].numpy()
            ret = sample.gt_ret_seg.data[0].numpy()
            assert crf.shape == ret.shape == (72, 80)
            assert (crf[64:] == 255).all() and (ret[:, 64:] == 255).all()
            _check_aligned(x[0].round().numpy().astype(int), crf, ret)
    assert flips == {True, False}


def test_semi_supervised_ids_use_ground_truth(code_root):
    ds = _dataset(
        code_root, [
            dict(type='LoadImageFromFile'),
            dict(type='LoadPseudoLabels'),
            dict(type='PackTwoMapSegInputs')
        ],
        gt_ids=['im1'])
    by_id = {ds.get_data_info(i)['img_id']: ds[i] for i in range(len(ds))}
    gt = by_id['im1']['data_samples']
    assert (gt.gt_sem_seg.data == 7).all() and (gt.gt_ret_seg.data == 7).all()
    pl = by_id['im0']['data_samples']
    assert not (pl.gt_sem_seg.data == pl.gt_ret_seg.data).any()
    with pytest.raises(ValueError, match='not in'):
        _dataset(code_root, [], gt_ids=['nope'])


def test_missing_label_file_is_named(code_root):
    os.remove(osp.join(code_root, 'pl/Yret/im2.png'))
    with pytest.raises(FileNotFoundError, match=r'pl/Yret/im2\.png'):
        _dataset(code_root, [])


def test_label_map_of_wrong_size_is_named(code_root):
    Image.fromarray(np.zeros((10, 10), np.uint8),
                    'L').save(osp.join(code_root, 'pl/Ycrf/im0.png'))
    ds = _dataset(code_root, PIPELINE)
    with pytest.raises(ValueError, match=r'Ycrf/im0\.png is 10x10'):
        ds[0]


def test_rgb_label_png_is_rejected(tmp_path):
    path = str(tmp_path / 'rgb.png')
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    load = TRANSFORMS.build(dict(type='LoadPseudoLabels'))
    with pytest.raises(ValueError, match='rgb.png has mode'):
        load(dict(seg_map_path=path, ret_map_path=path))


def test_palette_png_reads_class_indices(tmp_path):
    from bana_mm.datagen.synthetic import voc_palette
    labels = np.array([[0, 3], [255, 20]], np.uint8)
    image = Image.fromarray(labels, 'P')
    image.putpalette(voc_palette().reshape(-1).tolist())
    image.save(tmp_path / 'p.png')
    out = TRANSFORMS.build(dict(type='LoadPseudoLabels'))(
        dict(seg_map_path=str(tmp_path / 'p.png')))
    assert (out['gt_seg_map'] == labels).all()
    assert (out['gt_ret_map'] == labels).all()  # no Yret -> Yret = Ycrf
    assert out['seg_fields'] == ['gt_seg_map', 'gt_ret_map']


# ------------------------------------------------- issue 10 (items 5, 6, 7)
LOAD = [dict(type='LoadImageFromFile'), dict(type='LoadPseudoLabels')]


def _split(code_root):
    return osp.join(code_root, 'ImageSets/Segmentation/train.txt')


def test_duplicate_ids_in_split_kept_once_with_warning(code_root):
    """Issue 10.5: a repeated id would be trained on twice as often."""
    from mmengine.logging import MMLogger
    with open(_split(code_root), 'w') as f:
        f.write('im0\nim1\nim0\nim2\nim1\n')

    class _Collect(logging.Handler):

        def emit(self, record):
            messages.append(record.getMessage())

    messages, handler = [], _Collect()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        ds = _dataset(code_root, [])
    finally:
        logger.removeHandler(handler)
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == \
        ['im0', 'im1', 'im2']
    warns = [m for m in messages if 'more than once' in m]
    assert len(warns) == 1 and _split(code_root) in warns[0]
    assert 'im0' in warns[0] and 'im1' in warns[0] and 'im2' not in warns[0]


def test_empty_split_names_the_file(code_root):
    with open(_split(code_root), 'w') as f:
        f.write('\n')
    with pytest.raises(ValueError, match=r'train\.txt is empty'):
        _dataset(code_root, [])


@pytest.mark.parametrize('value', [200, 254])
def test_label_values_outside_the_classes_are_named(code_root, value):
    """Issue 10.6: not ``IndexError: Target 50 is out of bounds`` later.
    The dataset has 200 classes (background + c1..c199); 255 is ignore."""
    path = osp.join(code_root, 'pl/Yret/im1.png')
    ret = np.array(Image.open(path))
    ret[:3, :5] = value
    ret[5:7, :2] = 255  # ignore is fine
    Image.fromarray(ret, 'L').save(path)
    ds = _dataset(code_root, LOAD)
    ds[0], ds[2]  # the other images load
    with pytest.raises(ValueError) as err:
        ds[1]
    assert path in str(err.value) and f'{value} (15 px)' in str(err.value)


def test_label_values_checked_against_the_transform_argument(tmp_path):
    path = str(tmp_path / 'l.png')
    Image.fromarray(np.array([[0, 20], [255, 21]], np.uint8), 'L').save(path)
    TRANSFORMS.build(dict(type='LoadPseudoLabels', num_classes=22))(
        dict(seg_map_path=path))
    with pytest.raises(
            ValueError,
            match=r'l\.png has values outside the 21 '
            r'classes .*: 21 \(1 px\)'):
        TRANSFORMS.build(dict(type='LoadPseudoLabels', num_classes=21))(
            dict(seg_map_path=path))


@pytest.mark.parametrize(
    'cut', [0, 20, 'half'], ids=['empty', 'header_only', 'truncated'])
def test_truncated_label_png_is_named(code_root, cut):
    path = osp.join(code_root, 'pl/Ycrf/im2.png')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2 if cut == 'half' else cut])
    ds = _dataset(code_root, LOAD)
    with pytest.raises(
            ValueError, match=r'Ycrf/im2\.png is not a readable '
            'PNG'):
        ds[2]


@pytest.mark.parametrize(
    'content', [b'', b'\x89PNG garbage'], ids=['zero_bytes', 'not_decodable'])
def test_unreadable_image_is_named(code_root, content):
    """Issue 10.7: not OpenCV's ``!buf.empty()`` without a path."""
    path = osp.join(code_root, 'JPEGImages/im1.png')
    with open(path, 'wb') as f:
        f.write(content)
    ds = _dataset(code_root, LOAD)
    with pytest.raises(
            OSError,
            match=r'image .*JPEGImages/im1\.png '
            r'(is empty|cannot be decoded)'):
        ds[1]
