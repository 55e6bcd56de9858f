"""Tests of the registry-free stage-2 pseudo labels (paper §3.2, SPEC §2).

Expected values are written out by hand on tiny maps (most tests use
features at image resolution, so every box operation is pixel-exact), or
computed with plain torch ops (materialised upsampled features) that follow
the paper's formulas rather than the functions under test.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bana_mm.core.crf import (CRF_STAGE2, crf_probabilities, dense_crf,
                              restore_erased_boxes, ycrf_from_marginals)
from bana_mm.core.instance_masks import instance_masks, masks_to_coco_rle
from bana_mm.core.pseudo_labels import (PseudoLabelConfig,
                                        generate_pseudo_labels,
                                        prepare_pseudo_labels)
from bana_mm.core.resample import BilinearResampler
from bana_mm.core.retrieval import (class_prototypes, retrieval_labels,
                                    retrieval_maps)
from bana_mm.core.unaries import (agnostic_background, background_cam_unary,
                                  normalise_per_box, threshold_attention)


def t(rows, dtype=torch.float32):
    return torch.tensor(rows, dtype=dtype)


def unit(angle):
    return [math.cos(angle), math.sin(angle)]


def feat_from_rows(rows):
    """(h, w, D) nested lists -> (D, h, w) tensor."""
    return t(rows).permute(2, 0, 1).contiguous()


def unaries_of(feat,
               weights,
               boxes,
               labels,
               input_hw=None,
               image_hw=None,
               **options):
    """class ids, u0 and class unaries of :func:`prepare_pseudo_labels`
    for features at input resolution (every box operation pixel-exact)."""
    H, W = image_hw or feat.shape[1:]
    prep = prepare_pseudo_labels(
        np.zeros((H, W, 3), np.uint8), feat, weights, boxes, labels, input_hw,
        PseudoLabelConfig(**options))
    return prep.class_ids, prep.u0, prep.unaries[1:]


def background_unary(feat, boxes, input_hw, image_hw=None):
    return unaries_of(feat, None, boxes, [0] * len(boxes), input_hw,
                      image_hw)[1]


def class_unaries(feat, weights, boxes, labels, agnostic_classes=()):
    ids, _, u = unaries_of(
        feat, weights, boxes, labels, agnostic_classes=tuple(agnostic_classes))
    return ids, u


# ------------------------------------------------------------------ config
def test_config_defaults_follow_the_authors():
    cfg = PseudoLabelConfig()
    assert cfg.threshold == 0.99 and cfg.threshold_reference == 'similarity'
    assert cfg.upsample == 'features' and cfg.align_corners is True
    assert cfg.background == 'attention' and cfg.agnostic_unary == 'u0'
    assert cfg.crf_gaussian == dict(sxy=3, compat=3)
    assert cfg.crf_bilateral == dict(sxy=55, srgb=3, compat=4)
    assert cfg.crf_iterations == 10 and cfg.prob_clip == 1e-5
    assert CRF_STAGE2['gaussian'] == dict(sxy=3, compat=3)
    assert CRF_STAGE2['bilateral'] == dict(sxy=55, srgb=3, compat=4)
    # every config owns its dicts
    cfg.crf_gaussian['sxy'] = 1
    assert PseudoLabelConfig().crf_gaussian['sxy'] == 3
    with pytest.raises(ValueError):
        PseudoLabelConfig(upsample='bicubic')


# ---------------------------------------------------------------------- u0
def test_threshold_is_relative_to_a_maximum_below_0_99():
    # max similarity over the whole image (boxes included) is 0.9, so the
    # threshold is 0.891, not an absolute 0.99 (which would zero every box
    # pixel); the outside-box fill (1) does not enter the maximum.
    sim = t([[0.5, 0.9, 0.8911, 0.8909, 0.3]])
    inside = t([[1, 1, 1, 1, 0]], torch.bool)
    u0 = threshold_attention(sim, inside)
    assert torch.allclose(u0, t([[0.0, 0.9, 0.8911, 0.0, 1.0]]))


def test_u0_end_to_end_with_similarities_below_0_99():
    # background (1, 0) and (0, 1): query (0.5, 0.5). Box pixels (3, 2)
    # and (2, 1): cos = 5/(sqrt(2) sqrt(13)) = 0.98058 (the image max) and
    # 3/(sqrt(2) sqrt(5)) = 0.94868 < 0.99 x 0.98058 -> 0.
    feat = feat_from_rows([[[3.0, 2.0], [2.0, 1.0], [1.0, 0.0], [0.0, 1.0]]])
    u0 = background_unary(feat, [[0, 0, 2, 1]], (1, 4))
    assert torch.allclose(
        u0, t([[5 / math.sqrt(26), 0.0, 1.0, 1.0]]), atol=1e-6)


def test_threshold_relative_references():
    sim = t([[0.5, 0.9, 0.8911, 0.8909, 0.95]])
    inside = t([[1, 1, 1, 1, 0]], torch.bool)
    # max inside the boxes 0.9 -> 0.891: 0.8911 kept, 0.8909 zeroed
    u0 = threshold_attention(sim, inside, 0.99, 'boxes')
    assert torch.allclose(u0, t([[0.0, 0.9, 0.8911, 0.0, 1.0]]))
    # max of the raw similarity over the image 0.95 -> 0.9405: all zeroed
    u0 = threshold_attention(sim, inside, 0.99, 'similarity')
    assert torch.allclose(u0, t([[0.0, 0.0, 0.0, 0.0, 1.0]]))
    # values are zeroed, never binarised
    u0 = threshold_attention(sim, inside, 0.5, 'boxes')
    assert torch.allclose(u0, t([[0.5, 0.9, 0.8911, 0.8909, 1.0]]))


def test_background_unary_single_query_and_threshold():
    # 1 x 6 map at image resolution; pixels 0-2 in the box.
    # Background cells (2, 0) and (1, 0): query = mean = (1.5, 0).
    rows = [[
        unit(math.acos(0.995)),
        unit(math.acos(0.985)), [0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [1.0, 0.0]
    ]]
    feat = feat_from_rows(rows)
    u0 = background_unary(feat, [[0, 0, 3, 1]], (1, 6))
    assert torch.allclose(u0, t([[0.995, 0.0, 0.0, 1.0, 1.0, 1.0]]), atol=1e-6)


def test_background_query_is_mean_of_background_cells():
    # background (1, 0) and (0, 1): query (0.5, 0.5) -> cos((1, 1)) = 1,
    # cos((1, 0)) = 0.7071 < 0.99 -> 0.
    feat = feat_from_rows([[[3.0, 3.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    u0 = background_unary(feat, [[0, 0, 2, 1]], (1, 4))
    assert torch.allclose(u0, t([[1.0, 0.0, 1.0, 1.0]]), atol=1e-6)


def test_background_unary_ignores_padding_cells():
    # image 1 x 4 inside a 1 x 6 padded input; padding features (0, 5)
    # would pull the query away from (1, 0) if they were counted.
    feat = feat_from_rows([[[1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [1.0, 0.0],
                            [0.0, 5.0], [0.0, 5.0]]])
    u0 = background_unary(feat, [[0, 0, 2, 1]], (1, 6), image_hw=(1, 4))
    assert torch.allclose(u0[0, :4], t([1.0, 1.0, 1.0, 1.0]))
    u0_pad = background_unary(feat, [[0, 0, 2, 1]], (1, 6), (1, 6))
    assert torch.allclose(u0_pad[0, :2], t([0.0, 0.0]))


def test_background_unary_fully_covered_is_zero_inside():
    feat = torch.rand(3, 4, 5)
    u0 = background_unary(feat, [[0, 0, 5, 4]], (4, 5))
    assert torch.isfinite(u0).all() and torch.equal(u0, torch.zeros(4, 5))


# ---------------------------------------------------------------- unaries
# 1 x 6 image, D = 1, f = [1, 3, 0.5, 0.25, -1, 2]
F_ROW = feat_from_rows([[[1.0], [3.0], [0.5], [0.25], [-1.0], [2.0]]])


def test_cam_normalised_per_box_with_overlap():
    # w_c = 2: CAM = [2, 6, 1, 0.5, 0, 4]. Box A = pixels 0-2 (max 6),
    # box B = pixels 2-3 (max 1); pixel 2: max(1/6, 1) = 1; pixels 4-5
    # outside both boxes -> 0 although CAM(5) = 4.
    weights = t([[0.0], [2.0]])
    ids, u = class_unaries(F_ROW, weights, [[0, 0, 3, 1], [2, 0, 4, 1]],
                           [0, 0])
    assert ids.tolist() == [1]
    assert torch.allclose(u[0], t([[1 / 3, 1.0, 1.0, 0.5, 0.0, 0.0]]))


def test_classes_masked_outside_their_boxes():
    # class 0 (id 1): w = 2, box pixels 0-1; class 2 (id 3): w = 1, box
    # pixels 4-5: CAM = [0, 2] -> [0, 1]. Class 1 (row 2) is absent.
    weights = t([[-1.0], [2.0], [5.0], [1.0]])
    ids, u = class_unaries(F_ROW, weights, [[4, 0, 6, 1], [0, 0, 2, 1]],
                           [2, 0])
    assert ids.tolist() == [1, 3]
    assert torch.allclose(u[0], t([[1 / 3, 1.0, 0, 0, 0, 0]]))
    assert torch.allclose(u[1], t([[0, 0, 0, 0, 0.0, 1.0]]))


def test_box_with_zero_cam_gives_zero_not_nan():
    weights = t([[0.0], [-1.0]])  # CAM = ReLU(-f) is 0 on pixels 0-1
    ids, u = class_unaries(F_ROW, weights, [[0, 0, 2, 1], [4, 0, 5, 1]],
                           [0, 0])
    assert torch.isfinite(u).all()
    assert torch.allclose(u[0], t([[0, 0, 0, 0, 1.0, 0]]))


def test_normalise_per_box_skips_empty_boxes():
    cams = t([[[1.0, 2.0, 4.0]]])
    masks = t([[[0, 0, 0]], [[1, 1, 0]]], torch.bool)
    out = normalise_per_box(cams, masks, torch.tensor([0, 0]))
    assert torch.allclose(out, t([[[0.5, 1.0, 0.0]]]))


def test_class_agnostic_unary_is_one_minus_u0():
    rows = [[
        unit(math.acos(0.995)),
        unit(math.acos(0.985)), [0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [1.0, 0.0]
    ]]
    feat = feat_from_rows(rows)
    expected = t([[1 - 0.995, 1.0, 1.0, 0, 0, 0]])
    # explicit agnostic class (its row 1 would give a different map)
    weights = t([[0.0, 0.0], [1.0, 0.0]])
    ids, u = class_unaries(
        feat, weights, [[0, 0, 3, 1]], [0], agnostic_classes=[0])
    assert torch.allclose(u[0], expected, atol=1e-6)
    # no classifier at all
    ids, u = class_unaries(feat, None, [[0, 0, 3, 1]], [0])
    assert torch.allclose(u[0], expected, atol=1e-6)


def test_class_agnostic_unary_from_the_unthresholded_attention():
    """agnostic_unary='attention': 1 - A with A = ReLU(cos(f, q)) of the
    single query, not thresholded: (0.995, 0.985, 0) in the box, where
    'u0' zeroes 0.985 (< 0.99 x the image max 1) and gives 1 there."""
    rows = [[
        unit(math.acos(0.995)),
        unit(math.acos(0.985)), [0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [1.0, 0.0]
    ]]
    feat = feat_from_rows(rows)
    box, other = [0, 0, 3, 1], [3, 0, 5, 1]
    weights = t([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    out = {}
    for mode in ('u0', 'attention'):
        out[mode] = unaries_of(
            feat,
            weights, [box, other], [0, 1],
            agnostic_classes=(0, ),
            agnostic_unary=mode)
    ids, u0, u = out['attention']
    assert ids.tolist() == [1, 2]
    assert torch.allclose(
        u[0], t([[1 - 0.995, 1 - 0.985, 1.0, 0, 0, 0]]), atol=1e-6)
    assert torch.allclose(
        out['u0'][2][0], t([[1 - 0.995, 1.0, 1.0, 0, 0, 0]]), atol=1e-6)
    # only the agnostic channel changes: u0 and the CAM of class 1 do not
    # (class 1's box covers pixels 3-4: ReLU(f . (0, 1)) = 0 there)
    assert torch.equal(u0, out['u0'][1])
    assert torch.equal(u[1], out['u0'][2][1])
    with pytest.raises(ValueError, match='agnostic_unary'):
        PseudoLabelConfig(agnostic_unary='cam')


def test_agnostic_background_without_background_query():
    """A box over the whole image: no query, A = 0 in the boxes (eq. 3
    with J = 0), so both readings give 1 - b = 1 there."""
    inside = torch.ones(2, 3, dtype=torch.bool)
    u0 = threshold_attention(None, inside)
    for mode in ('u0', 'attention'):
        b = agnostic_background(u0, None, inside, mode)
        assert torch.equal(b, torch.zeros(2, 3))
    sim = t([[0.2, 0.6, 0.9]])
    inside = t([[1, 1, 0]], torch.bool)
    u0 = threshold_attention(sim, inside)
    assert torch.allclose(
        agnostic_background(u0, sim, inside, 'attention'), t([[0.2, 0.6,
                                                               1.0]]))
    assert torch.equal(agnostic_background(u0, sim, inside, 'u0'), u0)


def test_background_cam_unary_ablation():
    # inside the boxes: ReLU(f . w_0) / its max there (3); outside: 1.
    cam0 = t([[2.0, 4.0, 1.0, 3.0]])
    inside = t([[0, 0, 1, 1]], torch.bool)
    assert torch.allclose(
        background_cam_unary(cam0, inside), t([[1.0, 1.0, 1 / 3, 1.0]]))
    zero = background_cam_unary(torch.zeros(1, 4), inside)
    assert torch.equal(zero, t([[1.0, 1.0, 0.0, 0.0]]))


def test_ycrf_without_u0_differs_from_ycrf():
    # 1 x 6 image, box on pixels 0-3. Outside: (1, 0) = the query. In the
    # box: object (0, 1) at pixels 0-1, ambiguous (0.8, 0.6) at 2-3.
    # With u0: cos((0.8, 0.6), q) = 0.8 < 0.99 -> u0 = 0, the class CAM
    # (w = (0, 1)) 0.6 / 1 wins -> class. Without u0: the background CAM
    # (w_0 = (1, 0)) is 0.8 / 0.8 = 1 there and beats 0.6 -> background.
    feat = feat_from_rows([[[0.0, 1.0], [0.0, 1.0], [0.8, 0.6], [0.8, 0.6],
                            [1.0, 0.0], [1.0, 0.0]]])
    weights = t([[1.0, 0.0], [0.0, 1.0]])
    image = np.zeros((1, 6, 3), np.uint8)
    no_pairwise = dict(
        crf_gaussian=dict(compat=0), crf_bilateral=dict(compat=0))
    with_u0 = generate_pseudo_labels(
        image,
        feat,
        weights, [[0, 0, 4, 1]], [0],
        cfg=PseudoLabelConfig(**no_pairwise))
    without = generate_pseudo_labels(
        image,
        feat,
        weights, [[0, 0, 4, 1]], [0],
        cfg=PseudoLabelConfig(background='cam', **no_pairwise))
    assert with_u0.ycrf.tolist() == [[1, 1, 1, 1, 0, 0]]
    assert without.ycrf.tolist() == [[1, 1, 0, 0, 0, 0]]
    assert np.allclose(without.unaries[0], [[0, 0, 1, 1, 1, 1]])


@pytest.mark.parametrize('align_corners, peak', [(True, 24), (False, 23)])
def test_alignment_of_a_stride_8_map(align_corners, peak):
    # 41 = 8 x 5 + 1 pixels, 6 feature cells: with align_corners=True
    # (the authors, the default) cell i sits exactly at pixel 8i, so the
    # CAM of a one-hot cell 3 peaks at pixel 24 with the cell's value.
    feat = torch.zeros(1, 1, 6)
    feat[0, 0, 3] = 2.0
    feat = feat.expand(1, 3, 6).contiguous()
    cfg = dict() if align_corners else dict(align_corners=False)
    _, _, u = unaries_of(
        feat,
        t([[0.0], [1.0]]), [[0, 0, 41, 17]], [0],
        input_hw=(17, 41),
        image_hw=(17, 41),
        **cfg)
    row = u[0, 8]
    assert int(row.argmax()) == peak
    if align_corners:
        assert row[24] == 1.0 and row[16] == 0.0 and row[32] == 0.0
        assert torch.allclose(row[20], t(0.5))


def test_box_smaller_than_a_feature_cell():
    # 32 x 32 image, stride 8 (4 x 4 features); the 3 x 3 box covers no
    # sampled pixel centre (8.5, 16.5): nearest-sampled at feature
    # resolution it would be empty; applied at image resolution (every
    # mode) it gets a unary with max 1, no NaN.
    torch.manual_seed(0)
    feat = torch.rand(4, 4, 4) + 0.1
    weights = torch.rand(2, 4)
    boxes, labels = [[9.0, 9.0, 12.0, 12.0]], [0]
    image = np.zeros((32, 32, 3), np.uint8)
    for mode in ('maps', 'features'):
        out = generate_pseudo_labels(
            image,
            feat,
            weights,
            boxes,
            labels,
            cfg=PseudoLabelConfig(upsample=mode))
        assert np.isfinite(out.unaries).all() and np.isfinite(out.probs).all()
        uc = out.unaries[1]
        assert (uc[:9] == 0).all() and (uc[12:] == 0).all()
        assert (uc[:, :9] == 0).all() and (uc[:, 12:] == 0).all()
        assert uc.max() == pytest.approx(1.0)


# -------------------------------------------------------------------- CRF
def test_crf_probabilities_softmax_inside_onehot_outside():
    unaries = t([[[1.0, 0.2, 0.5]], [[0.0, 0.7, 0.5]]])
    probs = crf_probabilities(unaries, [[1, 0, 3, 1]])
    e = math.exp(0.5)
    expected = t([[[1.0, 1 / (1 + e), 0.5]], [[0.0, e / (1 + e), 0.5]]])
    assert torch.allclose(probs, expected)


def test_dense_crf_without_pairwise_returns_unary_argmax():
    rng = np.random.default_rng(0)
    probs = rng.random((3, 6, 7)).astype(np.float32)
    probs[1, 0, 0] = 0.0  # clipped to 1e-5
    probs /= probs.sum(axis=0, keepdims=True)
    image = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    q = dense_crf(
        image, probs, gaussian=dict(compat=0), bilateral=dict(compat=0))
    clipped = np.clip(probs, 1e-5, 1)
    assert np.allclose(q, clipped / clipped.sum(axis=0), atol=1e-5)
    assert (q.argmax(axis=0) == probs.argmax(axis=0)).all()


def test_dense_crf_smooths_isolated_pixel():
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, 8:] = 255
    probs = np.zeros((2, 16, 16), np.float32)
    probs[0, :, :8], probs[1, :, :8] = 0.7, 0.3
    probs[0, :, 8:], probs[1, :, 8:] = 0.3, 0.7
    probs[:, 8, 3] = [0.3, 0.7]  # noisy pixel in the dark half
    assert probs.argmax(axis=0)[8, 3] == 1
    q = dense_crf(image, probs)
    expected = np.zeros((16, 16), np.int64)
    expected[:, 8:] = 1
    assert (q.argmax(axis=0) == expected).all()
    assert np.allclose(q.sum(axis=0), 1, atol=1e-4)


def test_ycrf_masks_classes_outside_their_boxes():
    marginals = np.array([[[0.1, 0.2, 0.1, 0.05]], [[0.8, 0.1, 0.6, 0.5]],
                          [[0.1, 0.7, 0.3, 0.45]]], np.float32)
    masks = np.array([[[1, 1, 0, 0]], [[0, 0, 1, 0]]], bool)
    y = ycrf_from_marginals(marginals, masks, [3, 5])
    assert y.dtype == np.uint8 and y.tolist() == [[3, 0, 5, 0]]
    assert marginals[2, 0, 1] == pytest.approx(0.7)  # input not modified


def test_restore_erased_boxes_by_hand():
    # channels: background, map id 3, map id 5 on a 4 x 6 image
    probs = np.full((3, 4, 6), 0.2, np.float32)
    probs[0] = 0.6
    probs[1, 1, 1:3] = 0.7  # class 3 wins at (1, 1), (1, 2)
    probs[1, 3, 0] = 0.9  # ... and at (3, 0), outside its box
    probs[2, 2, 4] = 0.7
    ycrf = np.zeros((4, 6), np.uint8)
    ycrf[1, 2] = 5  # another class inside the erased box: overwritten
    ycrf[2, 4] = 5  # box of class 5 keeps a pixel: left alone
    boxes = [[0, 0, 3, 3], [3, 1, 6, 4], [4, 0, 6, 1]]
    labels = [2, 4, 4]  # the third box (class 5) has no pixel and no win
    out, restored = restore_erased_boxes(ycrf, probs, boxes, labels, [3, 5])
    expected = ycrf.copy()
    expected[1, 1:3] = 3
    assert restored == 1 and out.dtype == np.uint8
    assert out.tolist() == expected.tolist()
    assert ycrf[1, 2] == 5  # input not modified
    same, none = restore_erased_boxes(ycrf, probs, np.zeros((0, 4)), [],
                                      [3, 5])
    assert none == 0 and same.tolist() == ycrf.tolist()


def test_generate_restores_a_box_the_crf_erased(monkeypatch):
    """A CRF that returns all background (forced here) leaves the box
    empty; with ``restore_erased_boxes`` the box gets the pixels where the
    CRF input prefers its class, and Yret's prototype sees them."""
    import bana_mm.core.pseudo_labels as pseudo_labels
    image, feat, weights, boxes, labels = _square_scene()

    def background_only(image, probs, *args, **kwargs):
        out = np.zeros_like(np.asarray(probs, np.float32))
        out[0] = 1.0
        return out

    monkeypatch.setattr(pseudo_labels, 'dense_crf', background_only)
    plain = generate_pseudo_labels(image, feat, weights, boxes, labels)
    assert (plain.ycrf == 0).all() and plain.restored_boxes == 0
    out = generate_pseudo_labels(
        image,
        feat,
        weights,
        boxes,
        labels,
        cfg=PseudoLabelConfig(restore_erased_boxes=True))
    preferred = out.probs.argmax(axis=0) == 1
    inside = np.zeros((32, 32), bool)
    x1, y1, x2, y2 = (int(v) for v in np.asarray(boxes)[0])
    inside[y1:y2, x1:x2] = True
    assert out.restored_boxes == 1 and preferred.any()
    assert ((out.ycrf == 3) == (preferred & inside)).all()
    assert set(np.unique(out.ycrf)) == {0, 3}
    assert (out.yret == 3).sum() > (plain.yret == 3).sum()


# ---------------------------------------------------------------- retrieval
def test_prototypes_are_masked_means_and_fall_back_to_weights():
    feat = feat_from_rows([[[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]],
                           [[0.0, 1.0], [2.0, 2.0], [7.0, 0.0]]])
    y = np.array([[0, 2, 2], [0, 2, 255]], np.uint8)
    weights = t([[9.0, 9.0], [1.0, 1.0], [8.0, 8.0], [-1.0, 2.0]])
    res = BilinearResampler((2, 3), (2, 3), (2, 3))
    protos, has = class_prototypes(feat, y, torch.tensor([0, 2, 3]), weights,
                                   res)
    assert has.tolist() == [True, True, True]
    assert torch.allclose(protos[0], t([0.5, 0.5]))  # mean of 2 pixels
    assert torch.allclose(protos[1], t([10 / 3, 8 / 3]))  # mean of 3 pixels
    assert torch.allclose(protos[2], t([-1.0, 2.0]))  # absent -> w_3
    # an absent class-agnostic class has no prototype
    protos, has = class_prototypes(
        feat, y, torch.tensor([0, 3]), weights, res, agnostic=[3])
    assert has.tolist() == [True, False]


def test_region_means_equal_means_of_upsampled_features():
    torch.manual_seed(0)
    feat = torch.randn(5, 4, 6)
    for align in (False, True):
        # image 27 x 45 inside a padded 32 x 48 input
        res = BilinearResampler((4, 6), (32, 48), (27, 45), align)
        up = F.interpolate(
            feat[None], size=(32, 48), mode='bilinear',
            align_corners=align)[0, :, :27, :45]
        assert torch.allclose(res.up(feat), up, atol=1e-6)
        masks = torch.rand(3, 27, 45) > 0.6
        masks[2] = False
        means, counts = res.region_means(feat, masks)
        for k in range(2):
            ref = up[:, masks[k]].mean(dim=1)
            assert torch.allclose(means[k], ref, atol=1e-5)
        assert counts[2] == 0 and torch.equal(means[2], torch.zeros(5))
        assert torch.allclose(
            res.feature_norms(feat), up.norm(dim=0), atol=1e-5)


def test_yret_fallback_and_masking():
    # Ycrf has no class pixel: the class prototype is w_1 = (0, 1).
    feat = feat_from_rows([[[1.0, 0.0], [0.0, 2.0], [1.0, 0.2], [0.0, 1.0]]])
    weights = t([[5.0, 5.0], [0.0, 1.0]])
    ycrf = np.zeros((1, 4), np.uint8)
    ids, scores, protos = retrieval_maps(feat, ycrf, weights, [[0, 0, 3, 1]],
                                         [0])
    assert ids.tolist() == [0, 1]
    assert torch.allclose(protos[1], t([0.0, 1.0]))
    # q_0 = mean of all 4 pixels = (0.5, 0.8)
    q0 = F.normalize(t([0.5, 0.8]), dim=0)
    f = F.normalize(feat.flatten(1).t(), dim=1)
    c0 = (f @ q0).relu()
    assert torch.allclose(scores[0, 0, :3], c0[:3])
    assert scores[0, 0, 3] == 1.0  # outside the boxes
    assert torch.allclose(scores[1, 0], t([0.0, 1.0, f[2, 1], 0.0]))
    y = retrieval_labels(feat, ycrf, weights, [[0, 0, 3, 1]], [0])
    assert y.dtype == np.uint8 and y.tolist() == [[0, 1, 0, 0]]


def test_yret_ties_go_to_background():
    # q_0 = (1, 0), q_1 = (0, 1); (1, 1) is equally close to both, (-1, -1)
    # is 0 for both.
    feat = feat_from_rows([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, -1.0],
                            [0.0, 3.0]]])
    ycrf = np.array([[0, 1, 1, 1, 1]], np.uint8)
    y = retrieval_labels(feat, ycrf, t([[1.0, 0.0], [0.0, 1.0]]),
                         [[1, 0, 5, 1]], [0])
    # q_1 = mean of pixels 1-4 = (0, 1) direction (0, 4)/4
    assert y.tolist() == [[0, 1, 0, 0, 1]]


# -------------------------------------------------------------- end to end
def _square_scene(stride=4, size=32):
    """A bright square object [8, 24) on a dark image, box larger than it;
    features (0, 1) on the object, (1, 0) elsewhere."""
    image = np.full((size, size, 3), 30, np.uint8)
    image[8:24, 8:24] = (220, 200, 40)
    h = size // stride
    feat = torch.zeros(2, h, h)
    feat[0] = 1.0
    lo, hi = 8 // stride, 24 // stride
    feat[:, lo:hi, lo:hi] = t([0.0, 1.0])[:, None, None]
    weights = t([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    return image, feat, weights, [[4.0, 4.0, 28.0, 28.0]], [2]


def test_generate_recovers_object_in_box():
    image, feat, weights, boxes, labels = _square_scene()
    truth = np.zeros((32, 32), np.uint8)
    truth[8:24, 8:24] = 3
    for mode in ('maps', 'features'):
        out = generate_pseudo_labels(
            image,
            feat,
            weights,
            boxes,
            labels,
            cfg=PseudoLabelConfig(upsample=mode))
        assert out.class_ids.tolist() == [3]
        assert out.ycrf.shape == (32, 32) and out.ycrf.dtype == np.uint8
        for y in (out.ycrf, out.yret):
            assert set(np.unique(y)) <= {0, 3}
            assert (y[:4] == 0).all() and (y[:, 28:] == 0).all()
            inter = ((y == 3) & (truth == 3)).sum()
            union = ((y == 3) | (truth == 3)).sum()
            assert inter / union > 0.8, mode
        assert out.unaries.shape == out.probs.shape == (2, 32, 32)
        assert (out.u0[:4] == 1).all()  # u0 = 1 outside the box
        assert out.crf_seconds > 0 and out.unary_seconds > 0


def test_generate_without_u0_variant_runs():
    image, feat, weights, boxes, labels = _square_scene()
    out = generate_pseudo_labels(
        image,
        feat,
        weights,
        boxes,
        labels,
        cfg=PseudoLabelConfig(background='cam'))
    inside = np.zeros((32, 32), bool)
    inside[4:28, 4:28] = True
    assert (out.unaries[0][~inside] == 1).all()
    assert out.unaries[0][inside].max() == pytest.approx(1.0)
    assert out.unaries[0][16, 16] == 0  # object: background CAM is 0
    assert (out.ycrf[~inside] == 0).all() and (out.ycrf[16, 16] == 3)


def test_generate_fully_covered_image_is_finite():
    image, feat, weights, _, _ = _square_scene()
    out = generate_pseudo_labels(image, feat, weights, [[0, 0, 32, 32]], [2])
    assert (out.u0 == 0).all()
    for a in (out.unaries, out.probs, out.marginals, out.retrieval_scores):
        assert np.isfinite(a).all()
    assert set(np.unique(out.ycrf)) <= {0, 3}
    assert set(np.unique(out.yret)) <= {0, 3}
    assert (out.ycrf[8:24, 8:24] == 3).all()


def test_generate_without_boxes_is_all_background():
    image, feat, weights, _, _ = _square_scene()
    out = generate_pseudo_labels(image, feat, weights, np.zeros((0, 4)), [])
    assert (out.ycrf == 0).all() and (out.yret == 0).all()
    assert out.unaries.shape == (1, 32, 32) and (out.u0 == 1).all()


def _smooth_features(D=6, h=6, w=8):
    i = torch.arange(h, dtype=torch.float32)[:, None]
    j = torch.arange(w, dtype=torch.float32)[None, :]
    d = torch.arange(D, dtype=torch.float32)[:, None, None]
    return 1.0 + 0.5 * torch.sin(0.3 * (d + 1) * i / h + 0.2 * j / w + d)


def test_upsample_modes_agree_on_smooth_input():
    feat = _smooth_features()
    weights = torch.linspace(0.1, 1.0, 12).reshape(2, 6)
    image = np.zeros((45, 61, 3), np.uint8)
    boxes, labels = [[5.0, 4.0, 40.0, 30.0]], [0]
    cfgs = {
        m:
        PseudoLabelConfig(
            upsample=m, threshold_reference='boxes', threshold=0.0)
        for m in ('maps', 'features')
    }
    outs = {
        m:
        generate_pseudo_labels(
            image, feat, weights, boxes, labels, input_hw=(48, 64), cfg=c)
        for m, c in cfgs.items()
    }
    a, b = outs['maps'], outs['features']
    assert np.abs(a.u0 - b.u0).max() < 1e-3
    # CAMs of positive dot products: identical up to rounding
    assert np.abs(a.unaries[1:] - b.unaries[1:]).max() < 1e-5
    assert np.abs(a.retrieval_scores - b.retrieval_scores).max() < 1e-3


@pytest.mark.parametrize('align_corners', [True, False])
def test_features_mode_equals_materialised_upsampled_features(align_corners):
    torch.manual_seed(1)
    feat = torch.randn(8, 5, 7)
    weights = torch.randn(3, 8)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (37, 51, 3), dtype=np.uint8)
    boxes, labels = [[3.0, 2.0, 30.0, 25.0], [20.0, 10.0, 50.0, 36.0]], [0, 1]
    input_hw = (40, 56)
    cfg = PseudoLabelConfig(
        upsample='features',
        threshold=0.5,
        threshold_reference='boxes',
        align_corners=align_corners)
    out = generate_pseudo_labels(
        image, feat, weights, boxes, labels, input_hw=input_hw, cfg=cfg)
    up = F.interpolate(
        feat[None],
        size=input_hw,
        mode='bilinear',
        align_corners=align_corners)[0, :, :37, :51]
    ref = generate_pseudo_labels(
        image,
        up,
        weights,
        boxes,
        labels,
        cfg=PseudoLabelConfig(
            upsample='maps', threshold=0.5, threshold_reference='boxes'))
    assert np.allclose(out.u0, ref.u0, atol=1e-5)
    assert np.allclose(out.unaries, ref.unaries, atol=1e-5)
    assert np.allclose(out.retrieval_scores, ref.retrieval_scores, atol=1e-5)
    assert (out.ycrf == ref.ycrf).mean() > 0.999


# ---------------------------------------------------------- instance masks
def test_instance_masks_and_rle_round_trip():
    from pycocotools import mask as mask_utils
    y = np.zeros((6, 8), np.uint8)
    y[1:4, 1:5] = 2
    y[3:6, 4:8] = 4
    boxes = [[0, 0, 4, 4], [3, 2, 8, 6], [0, 0, 2, 2]]
    labels = [1, 3, 3]
    masks = instance_masks(y, boxes, labels)
    expected0 = np.zeros((6, 8), bool)
    expected0[1:4, 1:4] = True  # class 2 clipped to box 0 (x < 4)
    expected1 = np.zeros((6, 8), bool)
    expected1[3:6, 4:8] = True
    assert (masks[0] == expected0).all() and (masks[1] == expected1).all()
    assert not masks[2].any()
    rles = masks_to_coco_rle(masks)
    assert all(isinstance(r['counts'], str) for r in rles)
    assert [r['size'] for r in rles] == [[6, 8]] * 3
    decoded = mask_utils.decode(
        [dict(r, counts=r['counts'].encode()) for r in rles])
    assert (decoded.transpose(2, 0, 1).astype(bool) == masks).all()
    assert mask_utils.area(rles[0]) == 9
    assert masks_to_coco_rle(np.zeros((0, 6, 8), bool)) == []


def test_generate_without_classifier_is_class_agnostic():
    image, feat, _, boxes, labels = _square_scene()
    out = generate_pseudo_labels(image, feat, None, boxes, labels)
    inside = np.zeros((32, 32), bool)
    inside[4:28, 4:28] = True
    assert np.allclose(out.unaries[1][inside], 1 - out.u0[inside])
    assert (out.unaries[1][~inside] == 0).all()
    assert set(np.unique(out.ycrf)) <= {0, 3}
    assert set(np.unique(out.yret)) <= {0, 3}
    assert (out.ycrf[8:24, 8:24] == 3).all()
