"""Tests of the registered BAPHead (loss, predict) on hand-built batches.

Setting: input 16x16, feature map 4x4 (stride 4, so a box (0, 0, 8, 8)
covers exactly cells rows 0-1, cols 0-1), D = 2, L = 3 classes.
"""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import bana_mm.det  # noqa: F401  (registers BAPHead)

S = 1 / math.sqrt(2)
# classifier weights w_c, row 0 = background
W = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.5, -0.5], [-1.0, 0.5]])


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def build_head(**kwargs):
    cfg = dict(type='BAPHead', in_channels=2, num_classes=3)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    with torch.no_grad():
        head.classifier.weight.copy_(W.view(4, 2, 1, 1))
    return head


def make_sample(boxes, labels, img_shape=(16, 16), batch_shape=(16, 16)):
    sample = DetDataSample(
        metainfo=dict(img_shape=img_shape, batch_input_shape=batch_shape))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.long))
    return sample


def hand_ce(vectors, targets):
    """Mean (L+1)-way softmax cross-entropy with the hand-set weights W."""
    logits = torch.stack(
        [torch.as_tensor(v, dtype=torch.float64)
         for v in vectors]) @ W.double().t()
    targets = torch.tensor(targets)
    return (logits.logsumexp(dim=1) -
            logits[torch.arange(len(targets)), targets]).mean()


def feat_a():
    """Box (0,0,8,8) cells (1,0) (0,1) / (2,0) (1,-1); with N=2 the valid
    background grid cells give queries q1=(0,2), q2=(1,1), q3=(-1,0)."""
    f = torch.zeros(2, 4, 4)
    cells = {
        (0, 0): (1, 0),
        (0, 1): (0, 1),
        (1, 0): (2, 0),
        (1, 1): (1, -1),
        (0, 2): (0, 1),
        (0, 3): (0, 1),
        (1, 2): (0, 3),
        (1, 3): (0, 3),
        (2, 0): (1, 1),
        (2, 1): (1, 1),
        (3, 0): (1, 1),
        (3, 1): (1, 1),
        (2, 2): (-1, 0),
        (2, 3): (-2, 0),
        (3, 2): (-1, 0),
        (3, 3): (0, 0)
    }
    for (i, j), v in cells.items():
        f[:, i, j] = torch.tensor(v, dtype=torch.float32)
    return f


BOX_A_CELLS = [(1, 0), (0, 1), (2, 0), (1, -1)]
QUERIES_A = [(0, 2), (1, 1), (-1, 0)]


def r_box_a():
    """Eq. (4) for box (0,0,8,8) of feat_a with queries QUERIES_A:
    A = (s/3, (1+s)/3, s/3, 0) for the four cells (s = 1/sqrt 2)."""
    att = [S / 3, (1 + S) / 3, S / 3, 0.0]
    w = [1 - a for a in att]
    num = [sum(wi * c[k] for wi, c in zip(w, BOX_A_CELLS)) for k in range(2)]
    return [n / sum(w) for n in num]


def test_invalid_mode_raises():
    with pytest.raises(ValueError):
        build_head(mode='cam')


def test_loss_bap_exact_pooling():
    head = build_head(grid_size=2, roi_size=None)
    feats = feat_a()[None]
    losses = head.loss(feats, [make_sample([[0, 0, 8, 8]], [1])])
    expected = hand_ce([r_box_a()] + QUERIES_A, [2, 0, 0, 0])
    assert torch.allclose(losses['loss_cls'].double(), expected, atol=1e-5)


def test_loss_bap_repeats_target_per_bin():
    """roi_size (2, 2) on 2x2-cell boxes: each bin is one cell (4 vectors
    per box, target label + 1), plus every valid background query."""
    head = build_head(grid_size=2)
    feats = torch.stack([feat_a(), feat_a()])
    samples = [
        make_sample([[0, 0, 8, 8]], [1]),
        make_sample([[8, 8, 16, 16]], [2])
    ]
    losses = head.loss(feats, samples)
    box_b_cells = [(-1, 0), (-2, 0), (-1, 0), (0, 0)]
    queries_b = [(1, 0), (0, 2), (1, 1)]  # grid cells 0, 1, 2 of image 2
    expected = hand_ce(BOX_A_CELLS + QUERIES_A + box_b_cells + queries_b,
                       [2] * 4 + [0] * 3 + [3] * 4 + [0] * 3)
    assert torch.allclose(losses['loss_cls'].double(), expected, atol=1e-5)


def test_loss_gap_mode_has_no_background_queries():
    head = build_head(mode='gap', grid_size=2)
    feats = torch.stack([feat_a(), feat_a()])
    samples = [
        make_sample([[0, 0, 8, 8]], [1]),
        make_sample([[8, 8, 16, 16]], [2])
    ]
    pooled = head.pool(feats, samples, 2)
    assert all(r['queries'].shape == (0, 2) for r in pooled)
    losses = head.loss(feats, samples)
    box_b_cells = [(-1, 0), (-2, 0), (-1, 0), (0, 0)]
    expected = hand_ce(BOX_A_CELLS + box_b_cells, [2] * 4 + [3] * 4)
    assert torch.allclose(losses['loss_cls'].double(), expected, atol=1e-5)

    head = build_head(mode='gap', roi_size=None)
    losses = head.loss(feats[:1], samples[:1])
    gap = feat_a()[:, :2, :2].mean(dim=(1, 2))
    assert torch.allclose(
        losses['loss_cls'].double(), hand_ce([gap], [2]), atol=1e-5)


def test_loss_with_image_fully_covered_by_boxes():
    """The covered image adds its GAP box vector and no query."""
    head = build_head(grid_size=2, roi_size=None)
    feat_b = torch.stack([
        torch.arange(16.0).reshape(4, 4) / 8,
        1 - torch.arange(16.0).reshape(4, 4) / 16
    ])
    feats = torch.stack([feat_a(), feat_b])
    samples = [
        make_sample([[0, 0, 8, 8]], [1]),
        make_sample([[0, 0, 16, 16]], [0])
    ]
    losses = head.loss(feats, samples)
    assert torch.isfinite(losses['loss_cls'])
    expected = hand_ce([r_box_a()] + QUERIES_A + [feat_b.mean(dim=(1, 2))],
                       [2, 0, 0, 0, 1])
    assert torch.allclose(losses['loss_cls'].double(), expected, atol=1e-5)
    assert float(losses['fallback_share']) == 0.5

    # every image covered, default (2, 2) bins: still finite
    head = build_head()
    losses = head.loss(feats, [
        make_sample([[0, 0, 16, 16]], [0]),
        make_sample([[0, 0, 16, 16], [0, 0, 8, 8]], [2, 1])
    ])
    assert torch.isfinite(losses['loss_cls'])


def test_loss_gradients_reach_features_and_classifier():
    head = build_head()
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 2, 4, 4, generator=g).requires_grad_()
    samples = [
        make_sample([[0, 0, 8, 8], [6, 2, 14, 10]], [1, 2]),
        make_sample([[4, 4, 16, 12]], [0])
    ]
    losses = head.loss(feats, samples)
    losses['loss_cls'].backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()
    assert feats.grad.abs().sum() > 0
    assert feats.grad[1].abs().sum() > 0
    grad_w = head.classifier.weight.grad
    assert grad_w is not None and grad_w.abs().sum() > 0


def test_padding_is_neither_box_nor_background():
    """img_shape 12x16 in a 16x16 batch: feature row 3 is padding."""
    head = build_head(grid_size=2, roi_size=None)
    samples = [make_sample([[0, 0, 8, 8]], [1], img_shape=(12, 16))]
    feats = feat_a()[None].clone()
    feats[0, :, 3] = torch.tensor([50.0, -50.0])[:, None]
    pooled = head.pool(feats, samples, 2)[0]
    assert not pooled['background'][3].any()
    assert torch.equal(
        pooled['background'][:3],
        torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]],
                     dtype=torch.bool))
    # grid cells 2 and 3 only see row 2: (1,1) and mean((-1,0), (-2,0))
    queries = [(0, 2), (1, 1), (-1.5, 0)]
    assert torch.allclose(pooled['queries'], torch.tensor(queries))
    losses = head.loss(feats, samples)
    expected = hand_ce([r_box_a()] + queries, [2, 0, 0, 0])
    assert torch.allclose(losses['loss_cls'].double(), expected, atol=1e-5)
    feats[0, :, 3] = torch.tensor([-7.0, 3.0])[:, None]
    assert torch.allclose(
        head.loss(feats, samples)['loss_cls'], losses['loss_cls'])


def test_predict():
    head = build_head()  # test_grid_size 1: one query = mean background
    feats = torch.zeros(2, 2, 4, 4)
    feats[:, 1] = 1.0  # background (0, 1)
    feats[0, :, :2, :2] = torch.tensor([1.0, 0.0])[:, None, None]
    feats[0, 0, 2:, 2:] = 1.0  # background (1, 1): N=1 query = (1/3, 1)
    feats[1, :, 2:, 2:] = torch.tensor([0.2, 1.0])[:, None, None]
    feats[1, :, 2:, :2] = torch.tensor([1.0, 0.0])[:, None, None]
    samples = [
        make_sample([[0, 0, 8, 8]], [1]),
        make_sample([[8, 8, 16, 16], [0, 8, 8, 16]], [2, 0])
    ]
    out = head.predict(feats, samples)
    assert out[0].pred_instances.scores.shape == (1, 4)
    assert out[1].pred_instances.scores.shape == (2, 4)
    for sample, feat in zip(out, feats):
        inst = sample.pred_instances
        assert torch.allclose(
            inst.scores.sum(dim=1), torch.ones(len(inst.scores)))
        assert ((inst.labels >= -1) & (inst.labels <= 2)).all()
        assert torch.equal(inst.labels, inst.scores.argmax(dim=1) - 1)
        assert sample.feat_map.shape == (2, 4, 4)
        assert torch.equal(sample.feat_map, feat)
        assert sample.bg_attention.shape == (4, 4)
    # image 0: A = cos((1,0), (1/3,1)) = 1/sqrt10 in the box (N=4 would
    # give 1/(3 sqrt2)); one sample per bin, so r = (1, 0), logits W[:, 0]
    expected0 = torch.tensor([0.0, 1.0, 0.5, -1.0]).softmax(0)
    assert torch.allclose(
        out[0].pred_instances.scores[0], expected0, atol=1e-6)
    assert out[0].pred_instances.labels.tolist() == [0]
    att0 = torch.ones(4, 4)
    att0[:2, :2] = 1 / math.sqrt(10)
    assert torch.allclose(out[0].bg_attention, att0, atol=1e-6)
    # image 1: box 0 is background-like, logits W @ (0.2, 1) = (1, .2, -.4,
    # .3) -> label -1; box 1 is (1, 0) -> label 0
    expected1 = torch.tensor([1.0, 0.2, -0.4, 0.3]).softmax(0)
    assert torch.allclose(
        out[1].pred_instances.scores[0], expected1, atol=1e-5)
    assert out[1].pred_instances.labels.tolist() == [-1, 0]
    att1 = torch.ones(4, 4)
    att1[2:, 2:] = 1 / math.sqrt(1.04)
    att1[2:, :2] = 0
    assert torch.allclose(out[1].bg_attention, att1, atol=1e-5)


# 2 px box at input (12.6..14.6)^2: no nearest sampling point (12.5, 16.5)
# lies in it; its centre is at feature (2.9, 2.9), bilinear weights 0.01 on
# cell (2, 2), 0.09 on (2, 3) and (3, 2), 0.81 on (3, 3).
TINY_BOX = [12.6, 12.6, 14.6, 14.6]
TINY_WEIGHTS = {(2, 2): 0.01, (2, 3): 0.09, (3, 2): 0.09, (3, 3): 0.81}


def test_loss_box_narrower_than_a_stride():
    """The tiny box is classified on its bilinear feature (not a zero
    vector with CE ln(L+1)) and its term of the loss reaches the features
    at the four cells around it, weighted like the bilinear sample."""
    head = build_head(grid_size=2, roi_size=(1, 1))
    # feat_a at (2,2) (2,3) (3,2) (3,3): (-1,0) (-2,0) (-1,0) (0,0)
    tiny = (0.01 * -1 + 0.09 * -2 + 0.09 * -1, 0.0)
    grads = {}
    for label in (2, 1):
        feats = feat_a()[None].requires_grad_()
        sample = make_sample([[0, 0, 8, 8], TINY_BOX], [1, label])
        pooled = head.pool(feats, [sample], 2)[0]
        assert torch.allclose(pooled['box_feats'][1, 0], torch.tensor(tiny))
        loss = head.loss(feats, [sample])['loss_cls']
        # the box (0, 0, 8, 8) with (1, 1) bins is eq. (4) on its 4 cells
        expected = hand_ce([r_box_a(), tiny] + QUERIES_A,
                           [2, label + 1, 0, 0, 0])
        assert torch.allclose(loss.double(), expected, atol=1e-5)
        grads[label] = torch.autograd.grad(loss, feats)[0][0]
    # only the tiny box's target differs: d/dr (CE_3 - CE_2) = w_2 - w_3,
    # over the 5 vectors of the mean, times each cell's bilinear weight
    expected = torch.zeros(2, 4, 4)
    for (i, j), c in TINY_WEIGHTS.items():
        expected[:, i, j] = c * (W[2] - W[3]) / 5
    assert torch.allclose(grads[2] - grads[1], expected, atol=1e-6)
