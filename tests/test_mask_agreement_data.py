"""Two pseudo masks per COCO annotation: dataset, loading, and the pair
kept through mmdet's Resize / RandomFlip / RandomCrop / Pad and batching
(SPEC §4)."""
import copy
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from bana_mm.core.agreement import unpack_mask_pair
from bana_mm.core.boxes import BoxAnnotationError

H, W = 40, 52


def _rle(mask):
    from pycocotools import mask as mask_utils
    enc = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    enc['counts'] = enc['counts'].decode('ascii')
    return enc


def _masks(seed):
    """A random blob pair: Ycrf, and Yret = Ycrf shifted by 2 px."""
    rng = np.random.RandomState(seed)
    y0, x0 = rng.randint(2, 15), rng.randint(2, 20)
    ycrf = np.zeros((H, W), np.uint8)
    ycrf[y0:y0 + 18, x0:x0 + 25] = 1
    ycrf[y0 + 5:y0 + 9, x0 + 4:x0 + 9] = 0
    yret = np.roll(ycrf, 2, axis=1)
    return ycrf, yret


@pytest.fixture
def tiny_coco(tmp_path):
    """2 images, 3 annotations, as the stage-2 pair of jsons."""
    (tmp_path / 'images').mkdir()
    images, anns = [], {'ycrf': [], 'yret': []}
    ann_id = 10
    masks = {}
    for img_id in (1, 2):
        name = f'{img_id:03d}.jpg'
        cv2.imwrite(
            str(tmp_path / 'images' / name),
            np.full((H, W, 3), 60 * img_id, np.uint8))
        images.append(dict(id=img_id, file_name=name, height=H, width=W))
        for k in range(img_id):
            ycrf, yret = _masks(ann_id)
            masks[ann_id] = (ycrf, yret)
            ys, xs = np.nonzero(ycrf | yret)
            bbox = [
                float(xs.min()),
                float(ys.min()),
                float(xs.max() + 1 - xs.min()),
                float(ys.max() + 1 - ys.min())
            ]
            for key, m in (('ycrf', ycrf), ('yret', yret)):
                anns[key].append(
                    dict(
                        id=ann_id,
                        image_id=img_id,
                        category_id=1 + k,
                        bbox=bbox,
                        iscrowd=0,
                        area=int(m.sum()),
                        segmentation=_rle(m)))
            ann_id += 1
    cats = [dict(id=1, name='cat_a'), dict(id=2, name='cat_b')]
    for key in ('ycrf', 'yret'):
        with open(tmp_path / f'instances_{key}.json', 'w') as f:
            json.dump(
                dict(images=images, categories=cats, annotations=anns[key]), f)
    return tmp_path, masks


def _dataset(root, **kwargs):
    import bana_mm.det  # noqa: F401
    from bana_mm.det import CocoAgreementDataset
    args = dict(
        data_root=str(root),
        ann_file='instances_ycrf.json',
        ret_ann_file='instances_yret.json',
        data_prefix=dict(img='images/'),
        metainfo=dict(classes=('cat_a', 'cat_b')),
        pipeline=[])
    args.update(kwargs)
    return CocoAgreementDataset(**args)


def _rewrite(path, edit):
    with open(path) as f:
        content = json.load(f)
    edit(content)
    with open(path, 'w') as f:
        json.dump(content, f)


# --------------------------------------------------------------- dataset
def test_dataset_pairs_masks_by_annotation_id(tiny_coco):
    from pycocotools import mask as mask_utils
    root, masks = tiny_coco
    ds = _dataset(root)
    assert len(ds) == 2
    instances = ds.get_data_info(1)['instances']
    assert len(instances) == 2
    for inst, ann_id in zip(instances, (11, 12)):
        ycrf, yret = masks[ann_id]
        np.testing.assert_array_equal(mask_utils.decode(inst['mask']), ycrf)
        np.testing.assert_array_equal(
            mask_utils.decode(inst['mask_ret']), yret)


def test_single_json_carrying_both_masks(tiny_coco):
    from pycocotools import mask as mask_utils
    root, masks = tiny_coco

    def merge(content):
        for ann in content['annotations']:
            ann['segmentation_ret'] = _rle(masks[ann['id']][1])

    _rewrite(root / 'instances_ycrf.json', merge)
    ds = _dataset(root, ret_ann_file=None)
    inst = ds.get_data_info(0)['instances'][0]
    np.testing.assert_array_equal(
        mask_utils.decode(inst['mask_ret']), masks[10][1])


def test_missing_json_is_named(tiny_coco):
    root, _ = tiny_coco
    with pytest.raises(FileNotFoundError, match='nope_yret.json'):
        _dataset(root, ret_ann_file='nope_yret.json')
    with pytest.raises(FileNotFoundError, match='nope_ycrf.json'):
        _dataset(root, ann_file='nope_ycrf.json')


def test_mismatched_annotation_ids_name_the_file(tiny_coco):
    root, _ = tiny_coco
    _rewrite(root / 'instances_yret.json',
             lambda c: c['annotations'][1].update(id=99))
    with pytest.raises(
            BoxAnnotationError,
            match=r'instances_yret\.json.*annotation id 11'):
        _dataset(root)


def test_extra_ids_in_yret_are_an_error(tiny_coco):
    root, _ = tiny_coco

    def add(content):
        extra = copy.deepcopy(content['annotations'][0])
        extra['id'] = 77
        content['annotations'].append(extra)

    _rewrite(root / 'instances_yret.json', add)
    with pytest.raises(BoxAnnotationError, match=r'instances_yret\.json.*77'):
        _dataset(root)


def test_category_mismatch_and_unknown_category(tiny_coco):
    root, _ = tiny_coco
    _rewrite(root / 'instances_yret.json',
             lambda c: c['annotations'][0].update(category_id=2))
    with pytest.raises(BoxAnnotationError, match='category_id'):
        _dataset(root)
    _rewrite(root / 'instances_ycrf.json',
             lambda c: c['annotations'][0].update(category_id=5))
    with pytest.raises(BoxAnnotationError, match='unknown category_id 5'):
        _dataset(root, ret_ann_file=None)


def test_categories_listed_out_of_order_map_by_name(tiny_coco):
    """Issue 10.3: label i is classes[i] whatever the json's order."""
    root, _ = tiny_coco
    for key in ('ycrf', 'yret'):
        _rewrite(root / f'instances_{key}.json',
                 lambda c: c['categories'].reverse())
    ds = _dataset(root)
    names = {1: 'cat_a', 2: 'cat_b'}
    with open(root / 'instances_ycrf.json') as f:
        anns = json.load(f)['annotations']
    got = [
        ds.metainfo['classes'][i['bbox_label']] for info in ds
        for i in info['instances']
    ]
    assert got == [names[a['category_id']] for a in anns]


def test_yret_json_naming_a_category_differently_is_an_error(tiny_coco):
    root, _ = tiny_coco
    _rewrite(root / 'instances_yret.json',
             lambda c: c['categories'][0].update(name='cat_b_old'))
    with pytest.raises(BoxAnnotationError) as err:
        _dataset(root)
    assert str(root / 'instances_yret.json') in str(err.value)
    assert 'cat_b_old' in str(err.value)


# ------------------------------------------------------- transforms
def _loaded(masks_by_instance, source=None):
    """Results of LoadAgreementMasks for one image (source: None = packed
    pair; 0 / 1 = only Ycrf / only Yret as a single-source mask)."""
    from mmdet.registry import TRANSFORMS
    instances = []
    for ycrf, yret in masks_by_instance:
        ys, xs = np.nonzero(ycrf | yret)
        inst = dict(
            bbox=[xs.min(), ys.min(),
                  xs.max() + 1, ys.max() + 1],
            bbox_label=0,
            ignore_flag=0,
            mask=_rle(ycrf),
            mask_ret=_rle(yret))
        if source is not None:
            inst['mask'] = _rle((ycrf, yret)[source])
            del inst['mask_ret']
        instances.append(inst)
    img = np.random.RandomState(0).randint(0, 255, (H, W, 3)).astype(np.uint8)
    results = dict(
        img=img, img_shape=(H, W), ori_shape=(H, W), instances=instances)
    return TRANSFORMS.build(dict(type='LoadAgreementMasks',
                                 with_bbox=True)).transform(results)


PAIRS = [_masks(1), _masks(2)]


def test_load_packs_ycrf_plus_twice_yret():
    init_default_scope('mmdet')
    import bana_mm.det  # noqa: F401
    results = _loaded(PAIRS)
    packed = results['gt_masks'].masks
    assert packed.dtype == np.uint8 and packed.shape == (2, H, W)
    for k, (ycrf, yret) in enumerate(PAIRS):
        np.testing.assert_array_equal(packed[k], ycrf + 2 * yret)
    # one source: the mask twice, i.e. every pixel agrees
    single = _loaded(PAIRS, source=0)['gt_masks'].masks
    np.testing.assert_array_equal(single, 3 * np.stack([p[0] for p in PAIRS]))


TRANSFORMS_UNDER_TEST = [
    dict(type='Resize', scale=(83, 61), keep_ratio=True),
    dict(type='Resize', scale=(37, 29), keep_ratio=False),
    dict(type='RandomFlip', prob=1.0, direction='horizontal'),
    dict(type='RandomFlip', prob=1.0, direction='vertical'),
    dict(type='RandomCrop', crop_size=(25, 30), allow_negative_crop=True),
    dict(type='Pad', size_divisor=32),
    dict(type='Pad', size=(64, 70)),
]


@pytest.mark.parametrize(
    'cfg', TRANSFORMS_UNDER_TEST, ids=lambda c: f'{c["type"]}')
def test_pair_stays_aligned_through_transform(cfg):
    """The packed pair after a transform equals each source transformed on
    its own with the same random draw."""
    from mmdet.registry import TRANSFORMS
    init_default_scope('mmdet')
    import bana_mm.det  # noqa: F401

    def run(source):
        np.random.seed(3)
        return TRANSFORMS.build(cfg).transform(_loaded(PAIRS, source))

    packed = run(None)
    ycrf, yret = unpack_mask_pair(packed['gt_masks'].masks)
    alone = [run(s)['gt_masks'].masks // 3 for s in (0, 1)]
    assert ycrf.shape == alone[0].shape and ycrf.shape[0] == len(
        packed['gt_bboxes'])
    np.testing.assert_array_equal(ycrf, alone[0])
    np.testing.assert_array_equal(yret, alone[1])
    assert set(np.unique(packed['gt_masks'].masks)) == {0, 1, 2, 3}


def test_pair_stays_aligned_through_packing_and_batching():
    """PackDetInputs + pseudo_collate + DetDataPreprocessor(pad_mask)
    batch two images of different sizes; the head splits the padded pairs."""
    from mmdet.datasets.transforms import PackDetInputs
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from mmdet.registry import TRANSFORMS
    from mmengine.dataset import pseudo_collate

    from bana_mm.det import split_packed_masks
    init_default_scope('mmdet')
    resize = TRANSFORMS.build(
        dict(type='Resize', scale=(70, 70), keep_ratio=True))
    samples = []
    for pairs in (PAIRS, PAIRS[:1]):
        results = _loaded(pairs)
        if len(pairs) == 1:
            results = resize.transform(results)
        samples.append(PackDetInputs().transform(results))
    expected = [s['data_samples'].gt_instances.masks.masks for s in samples]
    batch = pseudo_collate(samples)
    pre = DetDataPreprocessor(pad_mask=True, pad_size_divisor=32)
    out = pre(batch, training=True)
    batch_shape = out['inputs'].shape[-2:]
    for sample, before in zip(out['data_samples'], expected):
        masks = sample.gt_instances.masks
        assert (masks.height, masks.width) == tuple(batch_shape)
        ycrf, yret = split_packed_masks(masks)
        h, w = before.shape[1:]
        b_crf, b_ret = unpack_mask_pair(before)
        np.testing.assert_array_equal(ycrf.masks[:, :h, :w], b_crf)
        np.testing.assert_array_equal(yret.masks[:, :h, :w], b_ret)
        for source in (ycrf, yret):  # the padding is background
            assert not source.masks[:, h:, :].any()
            assert not source.masks[:, :, w:].any()
    assert isinstance(out['inputs'], torch.Tensor)


def test_dataset_pipeline_end_to_end(tiny_coco):
    """Dataset + LoadAgreementMasks + Resize + Flip + Pack on real files."""
    root, masks = tiny_coco
    init_default_scope('mmdet')
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAgreementMasks', with_bbox=True),
        dict(type='Resize', scale=(100, 100), keep_ratio=True),
        dict(type='RandomFlip', prob=1.0),
        dict(type='PackDetInputs')
    ]
    ds = _dataset(root, pipeline=pipeline)
    item = ds[1]
    packed = item['data_samples'].gt_instances.masks.masks
    assert packed.shape[0] == 2
    ycrf, yret = unpack_mask_pair(packed)
    # Yret is Ycrf shifted right by 2 px; after x1.92 and a h-flip it is
    # shifted LEFT by ~4 px: compare the column centroids
    for k in range(2):
        cx_crf = np.nonzero(ycrf[k])[1].mean()
        cx_ret = np.nonzero(yret[k])[1].mean()
        assert cx_ret < cx_crf - 2.5
    assert osp.basename(item['data_samples'].img_path) == '002.jpg'
