"""Tests of the registry-free BAP maths (paper §3.1 eqs. 1-4, SPEC §1).

Expected values are written out by hand or computed with plain loops that
follow the paper's formulas, never with the functions under test.
"""
import math

import torch
from mmcv.ops import roi_align

from bana_mm.core.bap import (DEFAULT_MIN_BACKGROUND_SHARE,
                              background_attention, background_aware_pool,
                              box_masks_at, definite_background, grid_queries,
                              weighted_box_pool)


def boxes_t(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def bool_t(rows):
    return torch.tensor(rows, dtype=torch.bool)


def linear_map(h, w):
    """Single-channel map f[i, j] = i + 10 j (bilinear sampling is exact)."""
    i = torch.arange(h, dtype=torch.float32)[:, None]
    j = torch.arange(w, dtype=torch.float32)[None, :]
    return (i + 10 * j)[None]


# ----------------------------------------------------------- loop references
def ref_inside(box, i, j, H, W, h, w):
    """Nearest sampling: cell (i, j) looks at the centre of input pixel
    (floor(i*H/h), floor(j*W/w)); boxes are [x1, x2) x [y1, y2)."""
    y = (i * H) // h + 0.5
    x = (j * W) // w + 0.5
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1 <= x < x2 and y1 <= y < y2


def ref_masks(boxes, H, W, h, w):
    return torch.tensor([[[ref_inside(b, i, j, H, W, h, w) for j in range(w)]
                          for i in range(h)] for b in boxes.tolist()],
                        dtype=torch.bool).reshape(len(boxes), h, w)


def ref_queries(feat, background, n):
    """Eq. (1) with loops: padded N x N grid, masked mean per grid cell."""
    D, h, w = feat.shape
    ch, cw = -(-h // n), -(-w // n)
    queries, valid = [], []
    for gi in range(n):
        for gj in range(n):
            acc, cnt = torch.zeros(D, dtype=torch.float64), 0
            for i in range(gi * ch, min((gi + 1) * ch, h)):
                for j in range(gj * cw, min((gj + 1) * cw, w)):
                    if background[i, j]:
                        acc += feat[:, i, j].double()
                        cnt += 1
            queries.append(acc / max(cnt, 1))
            valid.append(cnt > 0)
    return torch.stack(queries), torch.tensor(valid)


def ref_cos(a, b):
    a, b = a.double(), b.double()
    return float(a @ b) / (float(a.norm()) * float(b.norm()))


def ref_attention(feat, queries, inside):
    """Eqs. (2)-(3) with loops."""
    D, h, w = feat.shape
    att = torch.ones(h, w, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            if inside[i, j]:
                vals = [max(0.0, ref_cos(feat[:, i, j], q)) for q in queries]
                att[i, j] = sum(vals) / len(vals) if vals else 0.0
    return att


def ref_exact_pool(feat, weight, masks):
    """Eq. (4) with loops over the nearest-sampled cells of each box."""
    D, h, w = feat.shape
    out = []
    for m in masks:
        num, den = torch.zeros(D, dtype=torch.float64), 0.0
        for i in range(h):
            for j in range(w):
                if m[i, j]:
                    num += float(weight[i, j]) * feat[:, i, j].double()
                    den += float(weight[i, j])
        out.append(num / den)
    return torch.stack(out)


def mmcv_roi_align(feat, boxes, input_hw, roi_size):
    """mmcv RoIAlign of feat (aligned, adaptive sampling) -> (K, bins, D)."""
    h, _ = feat.shape[1:]
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1)
    out = roi_align(feat[None], rois, tuple(roi_size), h / input_hw[0], 0,
                    'avg', True)
    return out.flatten(2).transpose(1, 2)


# -------------------------------------------------------------- box_masks_at
def test_box_masks_at_exact_cells():
    masks = box_masks_at(boxes_t([4, 0, 12, 8]), (16, 16), (4, 4))
    assert masks.dtype == torch.bool and masks.shape == (1, 4, 4)
    expected = bool_t([[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert torch.equal(masks[0], expected)


def test_box_masks_at_fractional_coords():
    """Sampling points 0.5, 4.5, 8.5, 12.5: x1/y1 closed, x2/y2 open."""
    boxes = boxes_t(
        [0.6, 3.9, 9.0, 13.0],  # rows 1-3, cols 1-2
        [4.5, 4.5, 4.6, 4.6],  # only the point (4.5, 4.5)
        [4.6, 0.0, 8.5, 16.0],  # 4.5 < x1, 8.5 == x2 (open)
        [0.0, 4.6, 16.0, 8.5])  # 4.5 < y1, 8.5 == y2 (open)
    masks = box_masks_at(boxes, (16, 16), (4, 4))
    assert torch.equal(
        masks[0],
        bool_t([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0]]))
    assert torch.equal(
        masks[1],
        bool_t([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    assert not masks[2].any() and not masks[3].any()


def test_box_masks_at_box_smaller_than_cell_is_empty():
    boxes = boxes_t([1, 1, 3, 3], [13, 13, 16, 16], [5, 0, 8, 16])
    masks = box_masks_at(boxes, (16, 16), (4, 4))
    assert masks.shape == (3, 4, 4)
    assert not masks.any()


def test_box_masks_at_non_divisible_sizes():
    """H=10, W=7 -> h=4, w=3: rows sample y = 0.5, 2.5, 5.5, 7.5 and
    columns x = 0.5, 2.5, 4.5."""
    masks = box_masks_at(boxes_t([2, 5, 5, 8]), (10, 7), (4, 3))
    assert torch.equal(masks[0],
                       bool_t([[0, 0, 0], [0, 0, 0], [0, 1, 1], [0, 1, 1]]))
    g = torch.Generator().manual_seed(0)
    xy1 = torch.rand(20, 2, generator=g) * torch.tensor([7., 10.])
    wh = torch.rand(20, 2, generator=g) * torch.tensor([7., 10.])
    boxes = torch.cat([xy1, xy1 + wh], dim=1)
    assert torch.equal(
        box_masks_at(boxes, (10, 7), (4, 3)), ref_masks(boxes, 10, 7, 4, 3))


def test_box_masks_at_no_boxes():
    masks = box_masks_at(torch.zeros(0, 4), (16, 16), (4, 4))
    assert masks.shape == (0, 4, 4) and masks.dtype == torch.bool


# ------------------------------------------------------- definite_background
def test_definite_background_without_and_with_valid():
    masks = bool_t([[[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
                    [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]])
    expected = bool_t([[0, 0, 1, 1], [0, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]])
    assert torch.equal(definite_background(masks), expected)
    valid = bool_t([[1, 1, 1, 0]] * 3 + [[0, 0, 0, 0]])
    expected_valid = bool_t([[0, 0, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0],
                             [0, 0, 0, 0]])
    assert torch.equal(definite_background(masks, valid), expected_valid)


def test_definite_background_no_boxes():
    masks = torch.zeros(0, 3, 4, dtype=torch.bool)
    assert torch.equal(
        definite_background(masks), torch.ones(3, 4, dtype=torch.bool))
    valid = bool_t([[1, 1, 0, 0]] * 3)
    assert torch.equal(definite_background(masks, valid), valid)


# -------------------------------------------------------------- grid_queries
def test_grid_queries_masked_means_2x2():
    c0 = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    feat = torch.stack([c0, 1 - c0])
    background = bool_t([[1, 1, 0, 1], [0, 1, 0, 0], [0, 0, 1, 1],
                         [0, 0, 1, 0]])
    queries, valid = grid_queries(feat, background, 2)
    # cell 0 (top-left): 0, 1, 5; cell 1 (top-right): 3; cell 2: none;
    # cell 3 (bottom-right): 10, 11, 14.
    expected = torch.tensor([[2.0, -1.0], [3.0, -2.0], [0.0, 0.0],
                             [35 / 3, -32 / 3]])
    assert torch.equal(valid, torch.tensor([True, True, False, True]))
    assert torch.allclose(queries, expected, atol=1e-5)


def test_grid_queries_pads_to_multiple_of_n():
    """5x5 with N=2 is padded to 6x6 (3x3 cells); padding is no background."""
    c0 = torch.arange(25, dtype=torch.float32).reshape(5, 5)
    feat = torch.stack([c0, torch.ones(5, 5)])
    background = torch.ones(5, 5, dtype=torch.bool)
    queries, valid = grid_queries(feat, background, 2)
    assert valid.all()
    # (0+1+2+5+6+7+10+11+12)/9, (3+4+8+9+13+14)/6,
    # (15+16+17+20+21+22)/6, (18+19+23+24)/4
    expected = torch.tensor([[6.0, 1.0], [8.5, 1.0], [18.5, 1.0], [21.0, 1.0]])
    assert torch.allclose(queries, expected, atol=1e-5)

    # N=4: padded to 8x8 with 2x2 cells; grid row/col 3 is pure padding.
    queries, valid = grid_queries(feat, background, 4)
    grid_valid = valid.reshape(4, 4)
    assert grid_valid[:3, :3].all()
    assert not grid_valid[3].any() and not grid_valid[:, 3].any()
    assert torch.allclose(queries[0], torch.tensor([3.0, 1.0]))  # 0,1,5,6
    assert torch.allclose(queries[2], torch.tensor([6.5, 1.0]))  # 4, 9
    assert torch.allclose(queries[10], torch.tensor([24.0, 1.0]))  # 24
    assert torch.equal(queries[~valid], torch.zeros(7, 2))


def test_grid_queries_matches_loop_reference():
    g = torch.Generator().manual_seed(1)
    feat = torch.randn(3, 7, 6, generator=g)
    background = torch.rand(7, 6, generator=g) > 0.4
    for n in (1, 2, 3, 4):
        queries, valid = grid_queries(feat, background, n)
        ref_q, ref_v = ref_queries(feat, background, n)
        assert queries.shape == (n * n, 3)
        assert torch.equal(valid, ref_v)
        assert torch.allclose(queries.double(), ref_q, atol=1e-5)


def test_grid_queries_n1_is_mean_of_background():
    g = torch.Generator().manual_seed(2)
    feat = torch.randn(4, 5, 7, generator=g)
    background = torch.rand(5, 7, generator=g) > 0.5
    queries, valid = grid_queries(feat, background, 1)
    assert queries.shape == (1, 4) and valid.tolist() == [True]
    assert torch.allclose(
        queries[0], feat[:, background].mean(dim=1), atol=1e-5)
    queries, valid = grid_queries(feat, torch.zeros(5, 7, dtype=torch.bool), 1)
    assert valid.tolist() == [False]
    assert torch.equal(queries, torch.zeros(1, 4))


# ------------------------------------------------------ background_attention
def test_background_attention_hand_computed():
    feat = torch.zeros(2, 2, 2)
    feat[:, 0, 0] = torch.tensor([1.0, 0.0])  # outside the boxes
    feat[:, 0, 1] = torch.tensor([0.0, 1.0])  # cos 0 and 1
    feat[:, 1, 0] = torch.tensor([3.0, 3.0])  # cos 1/sqrt2 twice
    feat[:, 1, 1] = torch.tensor([-1.0, 0.0])  # cos -1 -> 0 and 0
    queries = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    inside = bool_t([[0, 1], [1, 1]])
    att = background_attention(feat, queries, inside)
    expected = torch.tensor([[1.0, 0.5], [1 / math.sqrt(2), 0.0]])
    assert torch.allclose(att, expected, atol=1e-6)


def test_background_attention_relu_then_mean_over_all_queries():
    """The clipped (negative) cosine still counts in J."""
    feat = torch.tensor([[1.0, -1.0, 5.0], [2.0, -1.0, -5.0]])[:, None, :]
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    inside = torch.ones(1, 3, dtype=torch.bool)
    att = background_attention(feat, queries, inside)
    # (1,2): cos 1/sqrt5, 2/sqrt5, -1/sqrt5 -> (3/sqrt5)/3
    # (-1,-1): -1/sqrt2, -1/sqrt2, 1/sqrt2 -> (1/sqrt2)/3
    # (5,-5): 1/sqrt2, -1/sqrt2, -1/sqrt2 -> (1/sqrt2)/3
    expected = torch.tensor(
        [[1 / math.sqrt(5), 1 / (3 * math.sqrt(2)), 1 / (3 * math.sqrt(2))]])
    assert torch.allclose(att, expected, atol=1e-6)
    att = background_attention(feat, queries[:1], inside)
    assert torch.allclose(
        att,
        torch.tensor([[1 / math.sqrt(5), 0.0, 1 / math.sqrt(2)]]),
        atol=1e-6)
    assert (att >= 0).all()


def test_background_attention_matches_loop_reference():
    g = torch.Generator().manual_seed(3)
    feat = torch.randn(3, 5, 6, generator=g)
    queries = torch.randn(4, 3, generator=g)
    inside = torch.rand(5, 6, generator=g) > 0.3
    att = background_attention(feat, queries, inside)
    assert torch.allclose(
        att.double(), ref_attention(feat, queries, inside), atol=1e-5)


def test_background_attention_without_queries():
    feat = torch.randn(3, 2, 3)
    inside = bool_t([[1, 0, 1], [0, 1, 1]])
    att = background_attention(feat, torch.zeros(0, 3), inside)
    assert torch.equal(att, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))


# --------------------------------------------------------- weighted_box_pool
def test_weighted_box_pool_exact_eq4():
    c0 = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    feat = torch.stack([c0, c0**2])
    weight = torch.full((4, 4), 7.0)  # values outside the boxes must not count
    weight[0, 1], weight[0, 2], weight[1, 1], weight[1, 2] = 1.0, 0.5, 0.25, 0
    weight[2, 0], weight[3, 0] = 0.5, 1.0
    # box 0 -> cells (0,1), (0,2), (1,1), (1,2); box 1 -> cells (2,0), (3,0)
    boxes = boxes_t([4, 0, 12, 8], [0, 8, 4, 16])
    out = weighted_box_pool(feat, weight, boxes, (16, 16), roi_size=None)
    assert out.shape == (2, 1, 2)
    expected = torch.tensor([
        [(1 + 0.5 * 2 + 0.25 * 5) / 1.75, (1 + 0.5 * 4 + 0.25 * 25) / 1.75],
        [(0.5 * 8 + 12) / 1.5, (0.5 * 64 + 144) / 1.5],
    ])
    assert torch.allclose(out[:, 0], expected, atol=1e-5)

    g = torch.Generator().manual_seed(4)
    feat = torch.randn(3, 6, 5, generator=g)
    weight = torch.rand(6, 5, generator=g) + 0.05
    boxes = boxes_t([0, 0, 20, 24], [3, 5, 17, 13], [10, 2, 20, 22])
    out = weighted_box_pool(feat, weight, boxes, (24, 20), roi_size=None)
    ref = ref_exact_pool(feat, weight, ref_masks(boxes, 24, 20, 6, 5))
    assert torch.allclose(out[:, 0].double(), ref, atol=1e-5)


def test_weighted_box_pool_linear_map_hand_computed():
    """On f = i + 10 j, an aligned RoIAlign bin averages to f at its centre."""
    feat = linear_map(4, 4)
    ones = torch.ones(4, 4)
    box = boxes_t([4, 4, 12, 12])  # feature coords (1, 1, 3, 3)
    out = weighted_box_pool(feat, ones, box, (16, 16), roi_size=(1, 1))
    assert torch.allclose(out, torch.tensor([[[16.5]]]))
    out = weighted_box_pool(feat, ones, box, (16, 16), roi_size=(2, 2))
    assert torch.allclose(out[0, :, 0], torch.tensor([11.0, 21.0, 12.0, 22.0]))
    # anisotropic stride: input 16x16, features 4x8 (stride 4 in y, 2 in x);
    # the box covers rows 1-2 and cols 2-5: mean i = 1.5, mean j = 3.5.
    feat = linear_map(4, 8)
    ones = torch.ones(4, 8)
    for roi_size in ((1, 1), None):
        out = weighted_box_pool(feat, ones, box, (16, 16), roi_size=roi_size)
        assert torch.allclose(out, torch.tensor([[[36.5]]]))


def test_weighted_box_pool_ones_equals_roi_align():
    """A = 0: BAP pooling is GAP, i.e. plain RoIAlign of the features."""
    g = torch.Generator().manual_seed(5)
    feat = torch.randn(3, 8, 8, generator=g)
    boxes = boxes_t([0, 0, 32, 32], [3.3, 5.1, 17.9, 29.0], [8, 8, 16, 12],
                    [20.5, 1.2, 31.0, 9.7])
    for roi_size in ((1, 1), (2, 2)):
        out = weighted_box_pool(
            feat, torch.ones(8, 8), boxes, (32, 32), roi_size=roi_size)
        ref = mmcv_roi_align(feat, boxes, (32, 32), roi_size)
        assert out.shape == (4, roi_size[0] * roi_size[1], 3)
        assert torch.allclose(out, ref, atol=1e-5)
    # uniform (not one) weight: the weighted average is still RoIAlign of f
    out = weighted_box_pool(
        feat, torch.full((8, 8), 0.3), boxes, (32, 32), roi_size=(2, 2))
    assert torch.allclose(
        out, mmcv_roi_align(feat, boxes, (32, 32), (2, 2)), atol=1e-5)


def test_weighted_box_pool_constant_features():
    feat = torch.tensor([2.5, -1.0])[:, None, None].expand(2, 6, 6).clone()
    g = torch.Generator().manual_seed(6)
    weight = torch.rand(6, 6, generator=g) * 0.9 + 0.1
    boxes = boxes_t([0, 0, 24, 24], [2.2, 3.7, 13.1, 21.9], [12, 0, 24, 8])
    for roi_size in ((1, 1), (2, 2), (3, 2), None):
        out = weighted_box_pool(
            feat, weight, boxes, (24, 24), roi_size=roi_size)
        assert torch.allclose(
            out, torch.tensor([2.5, -1.0]).expand_as(out), atol=1e-5)


def test_weighted_box_pool_zero_weight_gives_plain_average():
    """Eq. (4) is 0/0 when 1 - A vanishes over the box: the box is pooled
    as with A = 0 (plain averages), finite and never a zero vector."""
    g = torch.Generator().manual_seed(12)
    feat = torch.randn(3, 4, 4, generator=g)
    weight = torch.ones(4, 4)
    weight[:2, :2] = 0  # the box (0, 0, 8, 8) covers exactly these cells
    box = boxes_t([0, 0, 8, 8])
    cell_mean = feat[:, :2, :2].mean(dim=(1, 2))
    # (2, 2): one sample per bin, at a cell centre; (1, 1): the 4 cells
    expected = {
        (2, 2):
        torch.stack(
            [feat[:, 0, 0], feat[:, 0, 1], feat[:, 1, 0], feat[:, 1,
                                                               1]])[None],
        (1, 1):
        cell_mean[None, None],
        None:
        cell_mean[None, None],
    }
    for roi_size, want in expected.items():
        out = weighted_box_pool(feat, weight, box, (16, 16), roi_size=roi_size)
        assert torch.allclose(out, want, atol=1e-6)
    boxes = boxes_t([0, 0, 16, 16], [3, 3, 9, 11])
    out = weighted_box_pool(feat, torch.zeros(4, 4), boxes, (16, 16))
    assert torch.allclose(
        out, mmcv_roi_align(feat, boxes, (16, 16), (2, 2)), atol=1e-6)


def bilinear(feat, y, x):
    """Bilinear value of (D, h, w) ``feat`` at feature coordinates (y, x)
    (cell centres at integers), written out."""
    y0, x0 = math.floor(y), math.floor(x)
    dy, dx = y - y0, x - x0
    out = torch.zeros(feat.shape[0], dtype=torch.float64)
    for i, j, c in ((y0, x0, (1 - dy) * (1 - dx)), (y0, x0 + 1, (1 - dy) * dx),
                    (y0 + 1, x0, dy * (1 - dx)), (y0 + 1, x0 + 1, dy * dx)):
        out += c * feat[:, i, j].double()
    return out


def old_weighted_pool(feat, weight, boxes, input_hw, roi_size):
    """What the pooling gave before small boxes were handled:
    RoIAlign((1-A) f) / max(RoIAlign(1-A), 1e-6)."""
    num = mmcv_roi_align(feat * weight, boxes, input_hw, roi_size)
    den = mmcv_roi_align(weight[None], boxes, input_hw, roi_size)
    return num / den.clamp(min=1e-6)


# Input 16x16, features 4x4 (stride 4): this box is 2 px wide, no sampling
# point (4.5, 8.5) lies in it, so it has no cell; its centre (5.6, 9.6) is
# at feature (y, x) = (1.9, 0.9): bilinear weights 0.01 on cell (1, 0), 0.09
# on (1, 1) and (2, 0), 0.81 on (2, 1).
TINY_BOX = [4.6, 8.6, 6.6, 10.6]
TINY_WEIGHTS = {(1, 0): 0.01, (1, 1): 0.09, (2, 0): 0.09, (2, 1): 0.81}


def test_box_narrower_than_a_stride_gets_its_bilinear_feature():
    feat = torch.zeros(2, 4, 4)
    feat[:, 1, 0] = torch.tensor([100.0, 1.0])
    feat[:, 1, 1] = torch.tensor([-10.0, 2.0])
    feat[:, 2, 0] = torch.tensor([10.0, 3.0])
    feat[:, 2, 1] = torch.tensor([1.0, 4.0])
    feat[:, 0, 3] = torch.tensor([5.0, 5.0])  # far away: must not count
    box = boxes_t(TINY_BOX)
    assert not box_masks_at(box, (16, 16), (4, 4)).any()
    # A = 1 everywhere outside the boxes (eq. 3): the weight is 0 around it
    weight = torch.zeros(4, 4)
    weight[0, 3] = 1.0
    # by hand: 0.01*(100,1) + 0.09*(-10,2) + 0.09*(10,3) + 0.81*(1,4)
    expected = torch.tensor([1.0 + 0.81, 0.01 + 0.18 + 0.27 + 3.24])
    for roi_size in ((1, 1), None):
        out = weighted_box_pool(feat, weight, box, (16, 16), roi_size=roi_size)
        assert out.shape == (1, 1, 2)
        assert torch.allclose(out[0, 0], expected, atol=1e-5)
    # (2, 2) bins, one sample each at y in {1.775, 2.025}, x in {0.775,
    # 1.025} (RoI x 0.65..1.15, y 1.65..2.15)
    out = weighted_box_pool(feat, weight, box, (16, 16), roi_size=(2, 2))
    want = torch.stack(
        [bilinear(feat, y, x) for y in (1.775, 2.025) for x in (0.775, 1.025)])
    assert (out.abs().sum(dim=-1) > 0).all()
    assert torch.allclose(out[0].double(), want, atol=1e-5)


def test_box_narrower_than_a_stride_passes_gradient_to_features():
    """Inside BAP (attention, queries, other boxes): d r / d f is the
    bilinear weight of each of the four cells around the tiny box."""
    g = torch.Generator().manual_seed(13)
    feat = (torch.rand(3, 4, 4, generator=g) + 0.1).requires_grad_()
    boxes = boxes_t([8, 0, 16, 8], TINY_BOX)  # normal box: rows 0-1, cols 2-3
    out = background_aware_pool(
        feat, boxes, (16, 16), grid_size=2, roi_size=(1, 1))
    assert out['fallback'] is False
    tiny = out['box_feats'][1, 0]
    assert (tiny.abs() > 0).all()
    tiny.sum().backward()
    expected = torch.zeros(4, 4)
    for (i, j), c in TINY_WEIGHTS.items():
        expected[i, j] = c
    assert torch.allclose(
        feat.grad, expected.expand(3, 4, 4).contiguous(), atol=1e-6)


def test_partly_covered_box_fills_only_its_empty_bins():
    """Box x, y in [4.6, 8.8): only cell (2, 2) is in it (sampling point
    8.5); in feature coordinates the RoI is 0.65..1.7, bin centres 0.9125
    and 1.4375. Bins (0, 0), (0, 1), (1, 0) reach no cell of the box (zero
    weight): plain bilinear features. Bin (1, 1) reaches cell (2, 2) only:
    eq. (4) gives f(2, 2) whatever its weight."""
    g = torch.Generator().manual_seed(14)
    feat = torch.randn(2, 4, 4, generator=g)
    box = boxes_t([4.6, 4.6, 8.8, 8.8])
    assert box_masks_at(box, (16, 16),
                        (4, 4))[0].nonzero().tolist() == [[2, 2]]
    weight = torch.zeros(4, 4)
    weight[2, 2] = 0.3  # 1 - A in the box, A = 1 outside (eq. 3)
    out = weighted_box_pool(feat, weight, box, (16, 16), roi_size=(2, 2))
    c0, c1 = 0.9125, 1.4375
    want = torch.stack([
        bilinear(feat, c0, c0),
        bilinear(feat, c0, c1),
        bilinear(feat, c1, c0), feat[:, 2, 2].double()
    ])
    assert torch.allclose(out[0].double(), want, atol=1e-5)
    old = old_weighted_pool(feat, weight, box, (16, 16), (2, 2))
    assert torch.equal(old[0, :3], torch.zeros(3, 2))  # the bug it fixes
    assert torch.equal(out[0, 3], old[0, 3])


def test_well_covered_boxes_pool_as_before():
    """Boxes with weight in every bin: bit-identical to the weighted
    RoIAlign ratio; a tiny box added to the image changes nothing for them
    (it has no cell, so M, the queries and A are unchanged) and gets a
    non-zero vector although every cell around it is background."""
    g = torch.Generator().manual_seed(15)
    feat = torch.rand(3, 8, 8, generator=g) + 0.05
    boxes = boxes_t([0, 0, 16, 12], [9.3, 14.2, 27.5, 30.0], [20, 2, 31, 13])
    for roi_size in ((2, 2), (1, 1)):
        out = background_aware_pool(
            feat, boxes, (32, 32), grid_size=2, roi_size=roi_size)
        assert out['fallback'] is False
        old = old_weighted_pool(feat, 1 - out['attention'], boxes, (32, 32),
                                roi_size)
        assert torch.equal(out['box_feats'], old)
        with_tiny = background_aware_pool(
            feat,
            torch.cat([boxes, boxes_t([5.2, 25.2, 6.8, 26.8])]), (32, 32),
            grid_size=2,
            roi_size=roi_size)
        assert torch.equal(with_tiny['attention'], out['attention'])
        assert torch.equal(with_tiny['box_feats'][:3], out['box_feats'])
        assert (with_tiny['box_feats'][3].abs().sum(dim=-1) > 0).all()


def test_weighted_box_pool_no_boxes():
    feat = torch.randn(3, 4, 4)
    assert weighted_box_pool(feat, torch.ones(4, 4), torch.zeros(0, 4),
                             (16, 16)).shape == (0, 4, 3)
    assert weighted_box_pool(
        feat, torch.ones(4, 4), torch.zeros(0, 4), (16, 16),
        roi_size=None).shape == (0, 1, 3)


# ----------------------------------------------------- background_aware_pool
def test_bap_gap_mode():
    g = torch.Generator().manual_seed(7)
    feat = torch.randn(3, 4, 4, generator=g)
    boxes = boxes_t([0, 0, 8, 8], [4, 6, 14, 16])
    out = background_aware_pool(feat, boxes, (16, 16), use_attention=False)
    assert out['queries'].shape == (0, 3)
    assert torch.equal(out['attention'], torch.zeros(4, 4))
    assert out['fallback'] is False
    assert torch.equal(out['background'],
                       ~ref_masks(boxes, 16, 16, 4, 4).any(0))
    assert torch.allclose(
        out['box_feats'],
        mmcv_roi_align(feat, boxes, (16, 16), (2, 2)),
        atol=1e-5)
    assert torch.allclose(
        out['box_feats'],
        weighted_box_pool(feat, torch.ones(4, 4), boxes, (16, 16)))


def test_bap_matches_loop_reference():
    """Eqs. (1)-(4) end to end (exact pooling, N=2) against loops."""
    g = torch.Generator().manual_seed(8)
    feat = torch.rand(3, 6, 6, generator=g) + 0.05
    boxes = boxes_t([0, 0, 6, 8], [5, 3, 11, 10])
    out = background_aware_pool(
        feat, boxes, (12, 12), grid_size=2, roi_size=None)
    masks = ref_masks(boxes, 12, 12, 6, 6)
    background = ~masks.any(0)
    ref_q, ref_v = ref_queries(feat, background, 2)
    ref_att = ref_attention(feat, ref_q[ref_v], masks.any(0))
    ref_r = ref_exact_pool(feat, 1 - ref_att, masks)
    assert out['fallback'] is False
    assert torch.equal(out['background'], background)
    assert torch.allclose(out['queries'].double(), ref_q[ref_v], atol=1e-5)
    assert torch.allclose(out['attention'].double(), ref_att, atol=1e-5)
    assert torch.allclose(out['box_feats'][:, 0].double(), ref_r, atol=1e-5)


def test_bap_fallback_at_exact_threshold():
    """8x8 map, 8 of 64 cells background = 0.125 -> GAP; queries kept."""
    assert DEFAULT_MIN_BACKGROUND_SHARE == 0.125
    g = torch.Generator().manual_seed(9)
    feat = torch.rand(3, 8, 8, generator=g) + 0.1  # positive: A > 0 in boxes
    boxes = boxes_t([0, 0, 8, 7])
    out = background_aware_pool(feat, boxes, (8, 8))
    gap = background_aware_pool(feat, boxes, (8, 8), use_attention=False)
    assert out['fallback'] is True
    assert int(out['background'].sum()) == 8
    assert torch.allclose(out['box_feats'], gap['box_feats'])
    # N=4 on 8x8: 2x2 cells; only grid row 3 holds background (image row 7)
    expected_q = torch.stack(
        [feat[:, 7, 2 * c:2 * c + 2].mean(1) for c in range(4)])
    assert torch.allclose(out['queries'], expected_q, atol=1e-6)
    assert torch.isfinite(out['attention']).all()


def test_bap_no_fallback_slightly_above_threshold():
    """9 of 64 cells background = 0.140625 -> attention pooling."""
    g = torch.Generator().manual_seed(9)
    feat = torch.rand(3, 8, 8, generator=g) + 0.1
    boxes = boxes_t([0, 0, 7, 7], [0, 0, 8, 6])  # leaves (6, 7) and row 7
    out = background_aware_pool(feat, boxes, (8, 8))
    gap = background_aware_pool(feat, boxes, (8, 8), use_attention=False)
    assert int(out['background'].sum()) == 9
    assert out['fallback'] is False
    assert (out['attention'][:7, :7] > 0).all()
    assert not torch.allclose(out['box_feats'], gap['box_feats'], atol=1e-3)
    # the threshold is a parameter
    out = background_aware_pool(
        feat, boxes, (8, 8), min_background_share=9 / 64)
    assert out['fallback'] is True
    assert torch.allclose(out['box_feats'], gap['box_feats'])


def test_bap_share_is_relative_to_valid_cells():
    """2 background cells of 8 valid ones = 0.25 (of all 16 it would be
    0.125, a fallback); padding cells give no queries."""
    g = torch.Generator().manual_seed(10)
    feat = torch.rand(3, 4, 4, generator=g) + 0.1
    valid = bool_t([[1, 1, 0, 0]] * 4)
    boxes = boxes_t([0, 0, 8, 12])  # rows 0-2, cols 0-1
    out = background_aware_pool(
        feat, boxes, (16, 16), valid=valid, grid_size=2)
    assert torch.equal(out['background'],
                       bool_t([[0, 0, 0, 0]] * 3 + [[1, 1, 0, 0]]))
    assert out['fallback'] is False
    assert torch.allclose(
        out['queries'], feat[:, 3, :2].mean(1)[None], atol=1e-6)


def test_bap_image_fully_covered():
    g = torch.Generator().manual_seed(11)
    feat = torch.randn(3, 4, 4, generator=g)
    boxes = boxes_t([0, 0, 16, 16], [2, 3, 9, 12])
    for roi_size in ((2, 2), None):
        out = background_aware_pool(feat, boxes, (16, 16), roi_size=roi_size)
        gap = background_aware_pool(
            feat, boxes, (16, 16), roi_size=roi_size, use_attention=False)
        assert out['queries'].shape == (0, 3)
        assert out['fallback'] is True
        assert not out['background'].any()
        assert torch.equal(out['attention'], torch.zeros(4, 4))
        assert torch.isfinite(out['box_feats']).all()
        assert torch.allclose(out['box_feats'], gap['box_feats'])
    assert torch.allclose(
        out['box_feats'][0, 0], feat.mean(dim=(1, 2)), atol=1e-6)
