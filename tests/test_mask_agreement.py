"""Agreement-only mask loss (paper §4.3, SPEC §4): maths and mmdet head."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from bana_mm.core.agreement import (agreement_mask_loss, pack_mask_pair,
                                    unpack_mask_pair)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ----------------------------------------------------------------- maths
def test_pack_unpack_roundtrip():
    rng = np.random.RandomState(0)
    a = rng.randint(0, 2, (3, 5, 7))
    b = rng.randint(0, 2, (3, 5, 7))
    packed = pack_mask_pair(a, b)
    assert packed.dtype == np.uint8
    assert set(np.unique(packed)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(packed, a + 2 * b)
    ua, ub = unpack_mask_pair(packed)
    np.testing.assert_array_equal(ua, a)
    np.testing.assert_array_equal(ub, b)


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError, match='shapes'):
        pack_mask_pair(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match='not binary'):
        pack_mask_pair(np.full((2, 2), 2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match='0..3'):
        unpack_mask_pair(np.full((2, 2), 7))


def test_loss_matches_hand_computation_on_small_roi():
    # one 2x3 RoI: Ycrf / Yret agree on 4 of 6 pixels
    logits = torch.tensor([[[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]]],
                          requires_grad=True)
    ycrf = torch.tensor([[[1, 0, 1], [0, 1, 1]]])
    yret = torch.tensor([[[1, 0, 0], [0, 1, 0]]])
    # agreeing pixels: (0,0) fg, (0,1) bg, (1,0) bg, (1,1) fg
    # BCE(x, 1) = softplus(-x), BCE(x, 0) = softplus(x)
    hand = (softplus(-2.0) + softplus(-1.0) + softplus(0.0) +
            softplus(-3.0)) / 4
    loss = agreement_mask_loss(logits, ycrf, yret)
    assert loss.item() == pytest.approx(hand, rel=1e-6)
    assert agreement_mask_loss(
        logits, ycrf, yret, loss_weight=0.5).item() == pytest.approx(
            hand / 2, rel=1e-6)
    loss.backward()
    # disagreeing pixels get no gradient
    assert logits.grad[0, 0, 2] == 0 and logits.grad[0, 1, 2] == 0
    assert logits.grad[0, 0, 0] != 0


def test_loss_normalises_over_all_rois_of_the_batch():
    logits = torch.tensor([[[1.0, -1.0]], [[0.5, 2.0]]])
    ycrf = torch.tensor([[[1, 1]], [[0, 1]]])
    yret = torch.tensor([[[1, 0]], [[1, 0]]])  # agree: RoI 0 pixel 0 only
    loss = agreement_mask_loss(logits, ycrf, yret)
    assert loss.item() == pytest.approx(softplus(-1.0), rel=1e-6)


def test_identical_masks_give_mean_bce():
    torch.manual_seed(0)
    logits = torch.randn(4, 7, 7)
    target = (torch.rand(4, 7, 7) > 0.5).float()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target)
    assert torch.allclose(
        agreement_mask_loss(logits, target, target), expected)


def test_no_agreeing_pixel_gives_zero_not_nan():
    logits = torch.randn(2, 4, 4, requires_grad=True)
    ycrf = (torch.rand(2, 4, 4) > 0.5).long()
    loss = agreement_mask_loss(logits, ycrf, 1 - ycrf)
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    empty = torch.zeros(0, 4, 4, requires_grad=True)
    assert agreement_mask_loss(empty, empty, empty).item() == 0.0


def test_loss_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match='shape mismatch'):
        agreement_mask_loss(
            torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), torch.zeros(1, 3, 3))


# ------------------------------------------------------------------ head
def _heads(num_classes=3, **kwargs):
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead
    from mmengine.registry import DefaultScope

    import bana_mm.det  # noqa: F401
    from bana_mm.det import AgreementFCNMaskHead
    common = dict(
        num_convs=1,
        in_channels=4,
        conv_out_channels=4,
        num_classes=num_classes)
    # the heads build their losses in the current default scope: mmdet's,
    # whatever scope an earlier test left behind
    with DefaultScope.overwrite_default_scope('mmdet'):
        agree = AgreementFCNMaskHead(**common, **kwargs)
        plain = FCNMaskHead(**common)
    plain.load_state_dict(agree.state_dict())
    return agree, plain


def _sampling(priors, gt_inds, labels):
    return SimpleNamespace(
        pos_priors=torch.tensor(priors, dtype=torch.float),
        pos_assigned_gt_inds=torch.tensor(gt_inds),
        pos_gt_labels=torch.tensor(labels))


def _gt(masks):
    from mmdet.structures.mask import BitmapMasks
    masks = np.asarray(masks, dtype=np.uint8)
    return InstanceData(masks=BitmapMasks(masks, *masks.shape[1:]))


def test_head_equals_mmdet_mask_loss_when_masks_identical():
    agree, plain = _heads()
    rng = np.random.RandomState(1)
    masks = [rng.randint(0, 2, (3, 20, 24)), rng.randint(0, 2, (2, 16, 16))]
    sampling = [
        _sampling([[0, 0, 12, 10], [3, 4, 20, 19], [1, 1, 23, 15]], [0, 2, 1],
                  [0, 2, 1]),
        _sampling([[2, 2, 14, 9], [0, 0, 16, 16]], [1, 0], [2, 2])
    ]
    cfg = ConfigDict(mask_size=28)
    preds = torch.randn(5, 3, 28, 28)
    ref = plain.loss_and_target(preds, sampling, [_gt(m) for m in masks],
                                cfg)['loss_mask']['loss_mask']
    packed = [_gt(pack_mask_pair(m, m)) for m in masks]
    out = agree.loss_and_target(preds, sampling, packed, cfg)
    assert torch.allclose(out['loss_mask']['loss_mask'], ref.squeeze())
    # plain 0/1 masks with packed=False: ordinary Mask R-CNN as well
    unpacked, _ = _heads(packed=False)
    out2 = unpacked.loss_and_target(preds, sampling, [_gt(m) for m in masks],
                                    cfg)
    assert torch.allclose(out2['loss_mask']['loss_mask'], ref.squeeze())


def test_head_hand_computation_with_known_agreement():
    """8x8 instance masks, one RoI over the whole image, 4x4 mask targets:
    mmdet's RoIAlign target is the 2x2 block mean thresholded at 0.5, taken
    for each source separately (never on the packed values)."""
    agree, _ = _heads(num_classes=2)
    ycrf = np.zeros((8, 8), np.uint8)
    ycrf[:4, :] = 1  # top half
    yret = np.zeros((8, 8), np.uint8)
    yret[:4, :4] = 1  # top-left quarter
    yret[6:, 6:] = 1  # bottom-right 2x2 block
    gt = _gt(pack_mask_pair(ycrf, yret)[None])
    sampling = [_sampling([[0, 0, 8, 8]], [0], [1])]
    preds = torch.randn(1, 2, 4, 4)
    out = agree.loss_and_target(preds, sampling, [gt], ConfigDict(mask_size=4))
    t_crf = np.zeros((4, 4))
    t_crf[:2, :] = 1
    t_ret = np.zeros((4, 4))
    t_ret[:2, :2] = 1
    t_ret[3, 3] = 1
    np.testing.assert_array_equal(out['mask_targets'][0].numpy(), t_crf)
    logits = preds[0, 1].numpy()  # class 1 channel
    agree_px = t_crf == t_ret  # 16 - 4 (top-right block) - 1 = 11
    assert agree_px.sum() == 11
    hand = sum(
        softplus(-x) if t else softplus(x)
        for x, t, ok in zip(logits.ravel(), t_crf.ravel(), agree_px.ravel())
        if ok) / 11
    assert out['loss_mask']['loss_mask'].item() == pytest.approx(
        hand, rel=1e-5)
    assert out['loss_mask']['mask_agreement'].item() == pytest.approx(11 / 16)


def test_head_zero_agreement_and_no_roi_are_finite():
    agree, _ = _heads(num_classes=1)
    ycrf = np.ones((1, 8, 8), np.uint8)
    gt = _gt(pack_mask_pair(ycrf, 1 - ycrf))
    preds = torch.randn(1, 1, 4, 4, requires_grad=True)
    out = agree.loss_and_target(preds, [_sampling([[0, 0, 8, 8]], [0], [0])],
                                [gt], ConfigDict(mask_size=4))
    loss = out['loss_mask']['loss_mask']
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(preds.grad).all()
    none = agree.loss_and_target(
        torch.zeros(0, 1, 4, 4), [_sampling(np.zeros((0, 4)), [], [])], [gt],
        ConfigDict(mask_size=4))
    assert none['loss_mask']['loss_mask'].item() == 0.0


def test_head_rejects_other_losses_and_unpacked_polygons():
    from mmdet.structures.mask import PolygonMasks

    from bana_mm.det import AgreementFCNMaskHead
    with pytest.raises(ValueError, match='CrossEntropyLoss'):
        AgreementFCNMaskHead(loss_mask=dict(type='DiceLoss'))
    agree, _ = _heads(num_classes=1)
    poly = InstanceData(
        masks=PolygonMasks([[np.array([0, 0, 4, 0, 4, 4.])]], 8, 8))
    with pytest.raises(TypeError, match='LoadAgreementMasks'):
        agree.loss_and_target(
            torch.zeros(1, 1, 4, 4), [_sampling([[0, 0, 8, 8]], [0], [0])],
            [poly], ConfigDict(mask_size=4))


def test_head_is_registered_in_mmdet_scope():
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    import bana_mm.det  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmdet'):
        head = MODELS.build(
            dict(
                type='AgreementFCNMaskHead',
                num_convs=1,
                in_channels=4,
                conv_out_channels=4,
                num_classes=2))
    assert head.packed is True
