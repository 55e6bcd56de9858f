"""MDH proposal masks (paper §3.1) and pseudo masks (eq. 3) on hand-built
arrays."""
import numpy as np
import pytest
import torch

from bana_mm.core.mdh_proposals import (FusedObject, constrain_to_boxes,
                                        fuse_object, ignored_share,
                                        paste_objects, paste_order,
                                        proposal_mask, pseudo_mask_from_probs)

IG = 255


def test_fuse_keeps_only_agreement():
    gc = np.array([[1, 1, 0, 0], [0, 1, 0, 0]], bool)
    second = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], bool)
    obj = fuse_object(gc, second, label=3)
    np.testing.assert_array_equal(obj.fg, [[1, 0, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(obj.ignore, [[0, 1, 0, 0], [1, 0, 0, 0]])
    assert obj.area == 2 and obj.label == 3


def test_fuse_unknown_second_is_ignored():
    gc = np.array([[1, 1, 0]], bool)
    second = np.array([[1, 0, 0]], bool)
    unknown = np.array([[1, 0, 1]], bool)
    obj = fuse_object(gc, second, 0, unknown)
    np.testing.assert_array_equal(obj.fg, [[0, 0, 0]])
    np.testing.assert_array_equal(obj.ignore, [[1, 1, 1]])


def test_fuse_shape_mismatch():
    with pytest.raises(ValueError, match='differ in size'):
        fuse_object(np.zeros((2, 2), bool), np.zeros((2, 3), bool), 0)


def _obj(label, fg_rows, ignore_rows):
    return FusedObject(label, np.array(fg_rows, bool),
                       np.array(ignore_rows, bool))


def test_paste_small_on_top_ignore_lowest():
    # big object (class 0 -> 1): 3x3 foreground, ignores column 3
    big = _obj(0, [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]],
               [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    # small object (class 4 -> 5): 2 pixels overlapping the big one and one
    # of its ignored pixels; it ignores a pixel of the big foreground
    small = _obj(4, [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]],
                 [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
    expected = np.array(
        [[1, 1, 1, IG], [1, 1, 5, 5], [1, 1, 1, IG], [0, 0, 0, IG]], np.uint8)
    for objects in ([big, small], [small, big]):
        np.testing.assert_array_equal(paste_objects(objects, (4, 4)), expected)
    assert paste_order([small, big]).tolist() == [1, 0]


def test_paste_order_stable_for_equal_areas():
    a = _obj(0, [[1, 0]], [[0, 0]])
    b = _obj(1, [[0, 1]], [[0, 0]])
    assert paste_order([a, b]).tolist() == [0, 1]


def test_proposal_mask_box_fallback():
    # one box covering x in [1, 4), y in [0, 2) on a 3x5 image
    gc = np.zeros((3, 5), bool)
    gc[0, 1:3] = True
    out = proposal_mask([gc], [[1, 0, 4, 2]], [2], (3, 5))
    np.testing.assert_array_equal(
        out, [[0, 3, 3, IG, 0], [0, IG, IG, IG, 0], [0, 0, 0, 0, 0]])
    assert ignored_share(out) == pytest.approx(4 / 15)


def test_proposal_mask_with_ycrf():
    # box of class 1 (-> 2) over the whole 2x4 image
    gc = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
    ycrf = np.array([[2, 0, 0, IG], [2, 2, 7, 0]], np.uint8)
    out = proposal_mask([gc], [[0, 0, 4, 2]], [1], (2, 4), ycrf=ycrf)
    # agree fg -> 2; gc only -> 255; ycrf only -> 255; agree bg -> 0;
    # Ycrf ignored -> 255; Ycrf's other class counts as "not this object"
    np.testing.assert_array_equal(out, [[2, IG, 0, IG], [2, IG, 0, 0]])


def test_proposal_mask_ycrf_outside_box_is_not_used():
    gc = np.zeros((2, 4), bool)
    gc[:, 0] = True
    ycrf = np.full((2, 4), 1, np.uint8)  # class 0 everywhere
    out = proposal_mask([gc], [[0, 0, 1, 2]], [0], (2, 4), ycrf=ycrf)
    np.testing.assert_array_equal(out, [[1, 0, 0, 0], [1, 0, 0, 0]])


def test_proposal_mask_no_boxes_is_background():
    out = proposal_mask([], np.zeros((0, 4)), [], (2, 3))
    assert out.dtype == np.uint8 and not out.any()


def test_tau_rule():
    # 3 classes on a 2x2 image; max probabilities 0.95, 0.9, 0.5, 0.91
    probs = torch.tensor([[[0.95, 0.05], [0.25, 0.04]],
                          [[0.03, 0.90], [0.50, 0.05]],
                          [[0.02, 0.05], [0.25, 0.91]]])
    out = pseudo_mask_from_probs(probs, tau=0.9)
    np.testing.assert_array_equal(out, [[0, IG], [IG, 2]])
    out = pseudo_mask_from_probs(probs.numpy(), tau=0.4)
    np.testing.assert_array_equal(out, [[0, 1], [1, 2]])


@pytest.mark.parametrize('tau', [0.0, 1.0, -0.1, 1.5])
def test_tau_outside_unit_interval(tau):
    with pytest.raises(ValueError, match=r'\(0, 1\)'):
        pseudo_mask_from_probs(torch.full((2, 1, 1), 0.5), tau=tau)


def test_box_constraint():
    mask = np.array([[1, 1, 2], [0, IG, 2]], np.uint8)
    # one box of class 0 (-> 1) over column 0 only
    out = constrain_to_boxes(mask, [[0, 0, 1, 2]], [0])
    np.testing.assert_array_equal(out, [[1, IG, IG], [0, IG, IG]])
    probs = torch.zeros(3, 2, 3)
    probs[1, 0, :2] = 1
    probs[2, :, 2] = 1
    probs[0, 1, :2] = 1
    out = pseudo_mask_from_probs(probs, 0.9, [[0, 0, 1, 2]], [0])
    np.testing.assert_array_equal(out, [[1, IG, IG], [0, 0, IG]])


def test_box_constraint_restrict_renormalises_over_the_box_classes():
    from bana_mm.core.mdh_proposals import restrict_to_box_classes

    # 3 classes (bg, class 0, class 1); one box of class 0 over column 0
    probs = torch.tensor([[[0.05, 0.05]], [[0.50, 0.50]], [[0.45, 0.45]]])
    kept = restrict_to_box_classes(probs, [[0, 0, 1, 1]], [0])
    # column 0: bg and class 0 allowed -> 0.05 / 0.55 and 0.50 / 0.55
    assert torch.allclose(kept[:, 0, 0], torch.tensor([1 / 11, 10 / 11, 0]))
    # column 1: only background allowed
    assert torch.allclose(kept[:, 0, 1], torch.tensor([1.0, 0, 0]))
    # eq. 3 on it: 10/11 > 0.9 keeps class 0; paper eq. 3 ignores both
    out = pseudo_mask_from_probs(probs, 0.9, [[0, 0, 1, 1]], [0], 'restrict')
    np.testing.assert_array_equal(out, [[1, 0]])
    np.testing.assert_array_equal(
        pseudo_mask_from_probs(probs, 0.9), [[IG, IG]])
    # 'drop' on the same input: nothing passes τ, all ignored
    np.testing.assert_array_equal(
        pseudo_mask_from_probs(probs, 0.9, [[0, 0, 1, 1]], [0], 'drop'),
        [[IG, IG]])
    with pytest.raises(ValueError, match='do not fit'):
        restrict_to_box_classes(probs, [[0, 0, 1, 1]], [2])
    with pytest.raises(ValueError, match='box constraint'):
        pseudo_mask_from_probs(probs, 0.9, [[0, 0, 1, 1]], [0], 'keep')


def test_fill_ignored_keeps_the_training_labels():
    """Only the training mask's 255 pixels come from the pseudo mask (which
    may itself be 255 there); its labels, background included, stay."""
    from bana_mm.core.mdh_proposals import fill_ignored
    training = np.array([[0, IG, 3], [IG, IG, 1]], np.uint8)
    pseudo = np.array([[5, 2, IG], [0, IG, 4]], np.uint8)
    np.testing.assert_array_equal(
        fill_ignored(training, pseudo), [[0, 2, 3], [0, IG, 1]])
    np.testing.assert_array_equal(training[0], [0, IG, 3])  # not edited
    with pytest.raises(ValueError, match='differ in size'):
        fill_ignored(training, pseudo[:, :2])


def test_pseudo_mask_modes():
    from bana_mm.core.mdh_proposals import check_pseudo_mask_mode
    assert check_pseudo_mask_mode(None) == 'eq3'
    assert check_pseudo_mask_mode('fill_ignored') == 'fill_ignored'
    with pytest.raises(ValueError, match='pseudo masks'):
        check_pseudo_mask_mode('union')


def test_grabcut_baseline_from_masks_smaller_box_on_top():
    from bana_mm.core.baselines import paint_by_box_area
    big = np.zeros((3, 4), bool)
    big[:, :3] = True
    small = np.zeros((3, 4), bool)
    small[1, 1:] = True
    boxes = [[1, 1, 4, 2], [0, 0, 3, 3]]  # small box first
    out = paint_by_box_area([small, big], boxes, [4, 0], (3, 4))
    np.testing.assert_array_equal(out,
                                  [[1, 1, 1, 0], [1, 5, 5, 5], [1, 1, 1, 0]])
