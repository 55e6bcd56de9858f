"""Stage-2 building blocks: baselines, class mapping, scores, label files,
pictures, and the prepare / finish split used by the worker pool."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

from bana_mm.core.baselines import box_baseline, grabcut_baseline, grabcut_mask
from bana_mm.core.class_mapping import map_class_weights
from bana_mm.core.pseudo_labels import (PseudoLabelConfig,
                                        finish_pseudo_labels,
                                        generate_pseudo_labels,
                                        prepare_pseudo_labels)
from bana_mm.evaluation import AgreementScores, SemanticScores, coco_mask_ap


# ------------------------------------------------------------- baselines
def test_box_baseline_smaller_box_on_top():
    boxes = [[0, 0, 4, 4], [1, 1, 3, 3]]  # the second lies inside the first
    out = box_baseline(boxes, [2, 0], (5, 5))
    expected = np.zeros((5, 5), np.uint8)
    expected[:4, :4] = 3
    expected[1:3, 1:3] = 1
    np.testing.assert_array_equal(out, expected)
    # order of the input does not matter: area decides
    np.testing.assert_array_equal(
        box_baseline(boxes[::-1], [0, 2], (5, 5)), expected)


def test_box_baseline_without_boxes_is_background():
    assert not box_baseline(np.zeros((0, 4)), [], (3, 4)).any()


def test_grabcut_finds_a_square_object():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 60, (80, 80, 3)).astype(np.uint8)
    image[30:50, 30:50] = rng.integers(190, 255, (20, 20, 3))
    out = grabcut_baseline(image, [[24, 24, 56, 56]], [4], iterations=5)
    truth = np.zeros((80, 80), bool)
    truth[30:50, 30:50] = True
    pred = out == 5
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert iou > 0.8
    assert not out[:20].any()  # nothing outside the box


def test_grabcut_degenerate_box_is_filled():
    image = np.zeros((10, 10, 3), np.uint8)
    out = grabcut_baseline(image, [[2, 2, 3, 8]], [0])  # 1 pixel wide
    assert (out[2:8, 2] == 1).all() and out.sum() == 6


# --------------------------------------------------------- class mapping
def test_map_class_weights_by_name_and_alias():
    weights = torch.arange(4 * 2, dtype=torch.float32).reshape(4, 2)
    model = ('aeroplane', 'cat', 'sofa')
    data = ('couch', 'dog', 'airplane')
    mapped, agnostic = map_class_weights(weights, model, data)
    assert agnostic == (1, )  # dog: not in the model
    np.testing.assert_array_equal(mapped[0], weights[0])
    np.testing.assert_array_equal(mapped[1], weights[3])  # couch -> sofa
    np.testing.assert_array_equal(mapped[2], torch.zeros(2))
    np.testing.assert_array_equal(mapped[3], weights[1])  # airplane


def test_map_class_weights_checks_row_count():
    with pytest.raises(ValueError, match='rows'):
        map_class_weights(torch.zeros(3, 2), ('a', 'b', 'c'), ('a', ))


# ----------------------------------------------------------------- scores
def test_semantic_scores_by_hand():
    gt = np.array([[0, 0, 1], [1, 255, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    scores = SemanticScores(['bg', 'a', 'b', 'c'])
    scores.add(pred, gt)
    res = scores.results()
    # bg: I=1, U=|{(0,0),(0,1),(1,2)}|=3; a: I=2, U=3; b: I=0, U=1 (gt
    # (1,2)); the ignored pixel's prediction 2 does not count; c: absent.
    # Percent, 2 decimals, as mmseg's IoUMetric.
    assert res['per_class']['bg'] == 33.33
    assert res['per_class']['a'] == 66.67
    assert res['per_class']['b'] == 0.0
    assert res['per_class']['c'] is None
    assert res['miou'] == 33.33  # (1/3 + 2/3 + 0) / 3
    assert res['aacc'] == 60.0  # 3 of 5 labelled pixels


def test_semantic_scores_accumulate_over_images():
    scores = SemanticScores(['bg', 'a'])
    scores.add(np.array([[1]]), np.array([[1]]))
    scores.add(np.array([[0]]), np.array([[1]]))
    assert scores.results()['per_class']['a'] == 50.0
    with pytest.raises(ValueError, match='size'):
        scores.add(np.zeros((2, 2)), np.zeros((2, 3)))


def test_agreement_scores_by_hand():
    ycrf = np.array([[0, 1, 1, 2]])
    yret = np.array([[0, 1, 2, 2]])
    gt = np.array([[0, 2, 1, 255]])
    scores = AgreementScores()
    scores.add(ycrf, yret, gt)
    res = scores.results()
    assert res['s_share'] == 75.0  # 3 of 4 pixels agree (percent)
    # S with ground truth: pixels 0 (correct) and 1 (wrong); pixel 3 ignored
    assert res['s_accuracy'] == 50.0
    assert AgreementScores().results() == dict(s_share=None, s_accuracy=None)


def test_coco_mask_ap_perfect_and_wrong_masks(tmp_path):
    from bana_mm.core.instance_masks import masks_to_coco_rle
    masks = np.zeros((2, 40, 40), np.uint8)
    masks[0, 5:25, 5:25] = 1
    masks[1, 20:38, 22:38] = 1
    rles = masks_to_coco_rle(masks)
    gt = dict(
        images=[dict(id=7, width=40, height=40, file_name='a.jpg')],
        categories=[dict(id=3, name='x')],
        annotations=[
            dict(
                id=i + 1,
                image_id=7,
                category_id=3,
                segmentation=r,
                area=int(m.sum()),
                bbox=[0, 0, 1, 1],
                iscrowd=0) for i, (r, m) in enumerate(zip(rles, masks))
        ])
    path = tmp_path / 'gt.json'
    path.write_text(json.dumps(gt))
    perfect = coco_mask_ap(
        str(path),
        [dict(image_id=7, category_id=3, segmentation=r) for r in rles])
    # AP in [0, 1] under mmdet's CocoMetric names
    assert perfect['mAP'] == pytest.approx(1.0) and perfect['mAP_l'] is None
    wrong = masks_to_coco_rle(np.roll(masks, 15, axis=2))
    bad = coco_mask_ap(
        str(path),
        [dict(image_id=7, category_id=3, segmentation=r) for r in wrong])
    assert bad['mAP_50'] < 0.5
    assert coco_mask_ap(str(path), [])['mAP'] is None


# ------------------------------------------------------------ label files
def test_label_png_round_trip_is_palette(tmp_path):
    from PIL import Image

    from bana_mm.utils.label_io import read_label_png, write_label_png
    label = np.array([[0, 1, 255], [20, 3, 0]], np.uint8)
    path = str(tmp_path / 'Ycrf' / 'x.png')
    write_label_png(path, label)
    np.testing.assert_array_equal(read_label_png(path), label)
    with Image.open(path) as image:
        assert image.mode == 'P'
        assert image.getpalette()[3:6] == [128, 0, 0]  # VOC class 1
    assert [p.name for p in (tmp_path / 'Ycrf').iterdir()] == ['x.png']


def test_read_label_png_rejects_colour_images(tmp_path):
    from PIL import Image

    from bana_mm.utils.label_io import read_label_png
    path = str(tmp_path / 'rgb.png')
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match='rgb.png'):
        read_label_png(path)


def test_stale_temp_files_are_removed(tmp_path):
    from bana_mm.utils.label_layout import remove_stale_temp_files
    (tmp_path / 'Ycrf').mkdir()
    (tmp_path / 'Ycrf' / '.a.png123.tmp').write_bytes(b'half')
    (tmp_path / 'Ycrf' / 'b.png').write_bytes(b'done')
    assert remove_stale_temp_files(str(tmp_path)) == ['.a.png123.tmp']
    assert [p.name for p in (tmp_path / 'Ycrf').iterdir()] == ['b.png']


# ------------------------------------------------- prepare / finish split
def _toy_inputs():
    gen = torch.Generator().manual_seed(3)
    image = (torch.rand(24, 32, 3, generator=gen) * 255).byte().numpy()
    feat = torch.rand(8, 3, 4, generator=gen)
    weights = torch.randn(4, 8, generator=gen)
    boxes = np.array([[2, 2, 20, 18], [12, 6, 30, 22]], np.float32)
    return image, feat, weights, boxes, [0, 2]


def test_prepared_state_survives_pickling():
    image, feat, weights, boxes, labels = _toy_inputs()
    cfg = PseudoLabelConfig(upsample='features')
    whole = generate_pseudo_labels(
        image, feat, weights, boxes, labels, cfg=cfg)
    prep = prepare_pseudo_labels(image, feat, weights, boxes, labels, cfg=cfg)
    prep = __import__('pickle').loads(__import__('pickle').dumps(prep))
    split = finish_pseudo_labels(prep)
    np.testing.assert_array_equal(whole.ycrf, split.ycrf)
    np.testing.assert_array_equal(whole.yret, split.yret)
    np.testing.assert_allclose(whole.unaries, split.unaries)


def test_overlay_sheet_has_a_panel_per_map():
    from bana_mm.visualization import pseudo_label_sheet
    image, feat, weights, boxes, labels = _toy_inputs()
    res = generate_pseudo_labels(image, feat, weights, boxes, labels)
    sheet = pseudo_label_sheet(image, boxes, np.array(labels), ['a', 'b', 'c'],
                               res.u0, res.class_ids, res.unaries[1:],
                               res.ycrf, res.yret)
    # input, u0, 2 CAMs, Ycrf, Yret, ~S = 7 panels -> 2 rows of 4
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    assert sheet.shape[0] == 2 * (200 + 22)
    panel_w = int(round(32 * 200 / 24))
    assert sheet.shape[1] == 4 * panel_w
    assert (sheet[-10:, -panel_w:] == 255).all()  # 8th slot is blank


def test_grabcut_does_not_depend_on_earlier_calls(synthetic_root):
    """OpenCV's generator (GrabCut's k-means seeding) is reset per call:
    the same box gives the same mask whatever ran before it (on this image
    and box, other generator states change ~40-650 pixels)."""
    import cv2
    image = cv2.imread(
        osp.join(synthetic_root, 'JPEGImages', 'syn_000005.jpg'))
    box = [86, 89, 188, 191]
    first = grabcut_mask(image, box, iterations=2)
    for state in (1, 2):
        cv2.setRNGSeed(state)
        np.testing.assert_array_equal(
            grabcut_mask(image, box, iterations=2), first)


def test_grabcut_fill_below(monkeypatch):
    """A box whose GrabCut foreground covers at most ``fill_below`` of it
    comes back filled; a larger foreground, or fill_below None, is left as
    GrabCut gave it."""
    import cv2
    image = np.zeros((40, 40, 3), np.uint8)
    box = [10, 10, 30, 30]  # 400 pixels
    kept = {}

    def fake_grabcut(window, mask, rect, bgd, fgd, iterations, mode):
        x, y = rect[0], rect[1]
        mask[:] = cv2.GC_BGD
        mask[y:y + kept['rows'], x:x + 20] = cv2.GC_PR_FGD

    monkeypatch.setattr(cv2, 'grabCut', fake_grabcut)
    filled = np.zeros((40, 40), bool)
    filled[10:30, 10:30] = True
    for rows, fill_below, expect_filled in [(0, None, False), (0, 0.0, True),
                                            (2, 0.0, False), (2, 0.1, True),
                                            (3, 0.1, False)]:
        kept['rows'] = rows  # GrabCut keeps rows x 20 of the 400 pixels
        mask = grabcut_mask(image, box, iterations=1, fill_below=fill_below)
        if expect_filled:
            np.testing.assert_array_equal(mask, filled)
        else:
            assert mask.sum() == rows * 20 and (mask <= filled).all()


@pytest.mark.parametrize('kwargs,match',
                         [(dict(iterations=0), 'iterations'),
                          (dict(margin=-0.5), 'margin'),
                          (dict(fill_below=1.0), 'fill_below')])
def test_grabcut_options_bad_values(kwargs, match):
    from bana_mm.core.baselines import GrabCutOptions
    with pytest.raises(ValueError, match=match):
        GrabCutOptions(**kwargs)


# ------------------------------------------------------- command line
def test_cli_passes_the_agnostic_unary_option():
    from tools.gen_pseudo_labels import label_config, parse_args
    base = ['CONFIG', 'CKPT', '--out-dir', 'OUT']
    assert label_config(parse_args(base)) == PseudoLabelConfig()
    cfg = label_config(parse_args(base + ['--agnostic-unary', 'attention']))
    assert cfg == PseudoLabelConfig(agnostic_unary='attention')
    cfg = label_config(parse_args(base + ['--restore-erased-boxes']))
    assert cfg == PseudoLabelConfig(restore_erased_boxes=True)
    cfg = label_config(
        parse_args(base + [
            '--no-u0', '--upsample', 'maps', '--threshold-reference', 'boxes',
            '--align-corners', 'false'
        ]))
    assert cfg == PseudoLabelConfig(
        background='cam',
        upsample='maps',
        threshold_reference='boxes',
        align_corners=False)
    with pytest.raises(SystemExit):
        parse_args(base + ['--agnostic-unary', 'cam'])
