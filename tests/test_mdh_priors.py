"""MDH box priors (paper §3.2, eq. 1-2), the 5-channel data path and its
preprocessor: hand-computed maps and alignment through resize/crop/flip/pad."""
import math

import numpy as np
import pytest
import torch

from bana_mm.core.priors import (NO_BOX_VALUE, boxes_from_masks, class_prior,
                                 distance_map, position_prior)

S2 = 128 + math.sqrt(2)
S5 = 128 + math.sqrt(5)


def test_distance_map_eq1_eq2_hand_example():
    # box covers rows 1..5, cols 1..5 of a 7x8 image: border ring = 128,
    # inside d=1 -> 127, centre d=2 -> 126 = D_min; eq. 2 maps 126 -> 0 and
    # 127 -> 128 * (127 - 126) / (128 - 126) = 64; outside 128 + euclid.
    expected = np.array([
        [S2, 129, 129, 129, 129, 129, S2, S5],
        [129, 128, 128, 128, 128, 128, 129, 130],
        [129, 128, 64, 64, 64, 128, 129, 130],
        [129, 128, 64, 0, 64, 128, 129, 130],
        [129, 128, 64, 64, 64, 128, 129, 130],
        [129, 128, 128, 128, 128, 128, 129, 130],
        [S2, 129, 129, 129, 129, 129, S2, S5],
    ])
    np.testing.assert_allclose(
        distance_map((1, 1, 6, 6), (7, 8)), expected, atol=1e-6)


def test_distance_map_truncation_and_whole_image_box():
    # a box over the whole 301x301 image: centre d = 150 -> 128 - 150 < 0,
    # truncated to 0 = D_min, so eq. 2 is the identity; d = 10 -> 118.
    dist = distance_map((0, 0, 301, 301), (301, 301))
    assert np.isfinite(dist).all()
    assert dist[150, 150] == 0.0
    assert dist[150, 10] == pytest.approx(118.0)
    assert dist[0, 37] == 128.0 and dist[300, 300] == 128.0
    prior = position_prior([(0, 0, 301, 301)], (301, 301))
    np.testing.assert_array_equal(prior, dist.astype(np.float32))
    assert (class_prior([(0, 0, 301, 301)], [4], (301, 301)) == 4).all()
    # 1-pixel-high box: no inside pixel, no rescale, outside truncated at 255
    thin = distance_map((0, 0, 3, 1), (1, 300))
    assert thin[0, :3].tolist() == [128.0, 128.0, 128.0]
    assert thin[0, 10] == 128 + 8 and thin[0, 200] == 255.0


def test_position_prior_fusion_overlap_and_background():
    boxes = [(0, 0, 6, 6), (3, 3, 10, 10)]
    hw = (12, 12)
    d_a, d_b = distance_map(boxes[0], hw), distance_map(boxes[1], hw)
    prior = position_prior(boxes, hw)
    assert prior.dtype == np.float32 and prior.shape == hw
    # (4, 4) is inside both: mean; (1, 1) only in A; (11, 0) in none: mean
    assert prior[4, 4] == pytest.approx((d_a[4, 4] + d_b[4, 4]) / 2)
    assert prior[1, 1] == pytest.approx(d_a[1, 1])
    assert prior[8, 8] == pytest.approx(d_b[8, 8])
    assert prior[11, 0] == pytest.approx((d_a[11, 0] + d_b[11, 0]) / 2)
    # by hand: (1,1) is A's inside d=1 ring: A's D_min = 128-2 -> eq.2 64;
    # (11,0): A: dy=6 -> 134; B: dx=3, dy=2 -> 128 + sqrt(13)
    assert prior[1, 1] == pytest.approx(64.0)
    assert prior[11, 0] == pytest.approx(
        (134 + 128 + math.sqrt(13)) / 2, rel=1e-6)
    assert (prior >= 0).all() and (prior <= 255).all()


def test_priors_without_boxes_are_background():
    prior = position_prior(np.zeros((0, 4)), (5, 7))
    assert (prior == NO_BOX_VALUE).all()
    cls = class_prior(np.zeros((0, 4)), [], (5, 7), background_index=0)
    assert (cls == 0).all() and cls.shape == (5, 7)


def test_class_prior_smallest_box_wins():
    big, small = (0, 0, 8, 8), (2, 2, 5, 5)
    for boxes, labels in (([big, small], [3, 7]), ([small, big], [7, 3])):
        cls = class_prior(boxes, labels, (10, 10), background_index=0)
        assert cls[3, 3] == 7 and cls[2, 4] == 7  # overlap: small box
        assert cls[0, 0] == 3 and cls[7, 7] == 3  # only in the big box
        assert cls[9, 9] == 0 and cls[0, 9] == 0  # outside both
    cls = class_prior([small], [2], (6, 6), background_index=21)
    assert cls[0, 0] == 21 and cls[4, 4] == 2 and cls[5, 5] == 21
    with pytest.raises(ValueError, match='2 boxes but 1 labels'):
        class_prior([big, small], [1], (10, 10))


def test_boxes_from_masks_instances_and_components():
    cls = np.zeros((6, 8), np.uint8)
    inst = np.zeros((6, 8), np.uint8)
    cls[1:3, 1:4], inst[1:3, 1:4] = 5, 1  # object 1, class 5
    cls[3:6, 5:8], inst[3:6, 5:8] = 2, 2  # object 2, class 2
    cls[0, 7] = 255  # ignore: never a box
    boxes, labels = boxes_from_masks(cls, inst)
    assert boxes.tolist() == [[1, 1, 4, 3], [5, 3, 8, 6]]
    assert labels.tolist() == [5, 2]
    # without instances: one box per connected component of each class
    cls2 = cls.copy()
    cls2[5, 0] = 5
    boxes, labels = boxes_from_masks(cls2)
    pairs = sorted(zip(labels.tolist(), boxes.tolist()))
    assert pairs == [(2, [5, 3, 8, 6]), (5, [0, 5, 1, 6]), (5, [1, 1, 4, 3])]


# ------------------------------------------------------- data path (mmseg)
def _run(pipeline_cfg, results):
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope

    import bana_mm.seg  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmseg'):
        return Compose(pipeline_cfg)(results)


def _scene(h=90, w=120):
    """Image and labels painted from the two boxes (bright inside)."""
    img = np.zeros((h, w, 3), np.uint8)
    seg = np.zeros((h, w), np.uint8)
    boxes = np.array([[10, 20, 60, 70], [70, 5, 110, 40]], np.float32)
    for (x1, y1, x2, y2), lab in zip(boxes.astype(int), (3, 8)):
        img[y1:y2, x1:x2] = 25 * lab
        seg[y1:y2, x1:x2] = lab
    return dict(
        img=img,
        gt_seg_map=seg,
        seg_fields=['gt_seg_map'],
        img_shape=(h, w),
        ori_shape=(h, w),
        gt_bboxes=boxes,
        gt_bboxes_labels=np.array([3, 8]),
        reduce_zero_label=False)


@pytest.mark.parametrize('seed', range(6))
def test_five_channels_stay_aligned_through_augmentation(seed):
    crop = (64, 64)
    pipeline = [
        dict(
            type='RandomResize',
            scale=(120, 90),
            ratio_range=(0.5, 2.0),
            keep_ratio=True),
        dict(type='BoxRandomCrop', crop_size=crop),
        dict(type='RandomFlip', prob=0.5),
        dict(type='Pad', size=crop),
        dict(type='AddBoxPriors'),
    ]
    np.random.seed(seed)
    out = _run(pipeline, _scene())
    img, seg = out['img'], out['gt_seg_map']
    assert img.shape == (64, 64, 5) and img.dtype == np.float32
    cls = img[..., 4]
    pos = img[..., 3]
    valid = seg != 255  # padding
    # the class prior equals the (box-shaped) label map where it is defined
    assert (cls[valid] == seg[valid]).mean() > 0.97, seed
    # padded area: background class, real (outside-box) position prior
    assert (cls[~valid] == 0).all() and (pos[~valid] > 128).all()
    # the image channel shows the object exactly where the class prior does
    bright = img[..., 0] > 0
    assert (bright[valid] == (cls[valid] > 0)).mean() > 0.97, seed
    # position prior: < 128 only inside boxes
    assert not ((pos < 128) & (cls == 0)).any()


def test_priors_follow_a_deterministic_flip_and_crop():
    scene = _scene()
    np.random.seed(0)
    out = _run([dict(type='RandomFlip', prob=1.0),
                dict(type='AddBoxPriors')], dict(scene))
    # box 0 x 10..60 mirrored in a 120-px-wide image -> 60..110
    assert out['gt_bboxes'][0].tolist() == [60, 20, 110, 70]
    expected = position_prior(
        np.array([[60, 20, 110, 70], [10, 5, 50, 40]]), (90, 120))
    np.testing.assert_allclose(out['img'][..., 3], expected)
    np.testing.assert_array_equal(out['img'][..., 4], out['gt_seg_map'])


def test_add_box_priors_rejects_a_second_application():
    out = _run([dict(type='AddBoxPriors')], _scene())
    from bana_mm.seg.mdh import AddBoxPriors
    with pytest.raises(ValueError, match='3-channel'):
        AddBoxPriors()(out)


def test_multichannel_preprocessor_swaps_rgb_and_normalises_5_channels():
    from mmseg.structures import SegDataSample

    from bana_mm.seg.mdh import MultiChannelSegDataPreProcessor
    pre = MultiChannelSegDataPreProcessor(
        mean=[1, 2, 3, 128, 10], std=[1, 1, 1, 64, 10], bgr_to_rgb=True)
    x = torch.arange(5, dtype=torch.float32).view(5, 1, 1).expand(5, 2, 2)
    x = x * 100  # channels B=0, G=100, R=200, G_prior=300, class=400
    out = pre(dict(inputs=[x.clone()], data_samples=[SegDataSample()]))
    got = out['inputs'][0, :, 0, 0].tolist()
    # RGB order: R=200-1, G=100-2, B=0-3; priors (300-128)/64, (400-10)/10
    assert got == pytest.approx([199, 98, -3, 172 / 64, 39])
    with pytest.raises(ValueError, match='3 channels but mean/std have 5'):
        pre(dict(inputs=[x[:3].clone()], data_samples=[SegDataSample()]))


def test_annnet_tta_pipeline_computes_priors_per_view():
    import os.path as osp

    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(
            osp.dirname(__file__), '..', 'configs', 'mdh', 'annnet_tiny.py'))
    tta = cfg.tta_pipeline[1]
    scene = _scene()
    scene.pop('gt_seg_map')
    scene.update(seg_map_path=None, seg_fields=[])
    out = _run([tta], scene)
    assert len(out['inputs']) == 12  # 6 scales x 2 flips
    for x, sample in zip(out['inputs'], out['data_samples']):
        assert x.shape[0] == 5
        cls = x[4].numpy()
        # (x, y) = (0.3 w, 0.5 h) lies in box 0 (label 3); in a flipped view
        # it shows original x = 0.7 w, y = 0.5 h: outside both boxes
        h, w = cls.shape
        expected = 0 if sample.metainfo['flip'] else 3
        assert cls[int(0.5 * h), int(0.3 * w)] == expected
