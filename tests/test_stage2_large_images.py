"""Issue 20 class 7, large images: stage 2 labels an image above
``max_pixels`` at a capped size and writes its labels at its own size, cut
to its boxes there; images below the cap are labelled as before."""
import json
import os.path as osp
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from test_stage2_tool import (CLASSES, CONFIG, VAL, _digests, _ids, _run,
                              make_checkpoint)

from bana_mm.core.boxes import pixel_box_masks
from bana_mm.core.downscale import (OriginalSize, box_pixel_ranges, capped_hw,
                                    labels_at_size)
from bana_mm.core.pseudo_labels import DEFAULT_MAX_PIXELS, PseudoLabelConfig
from bana_mm.utils.label_io import read_label_png

#: Cap of the end-to-end runs: above every synthetic image (at most
#: 240 x 240 = 57600 pixels), below the enlarged ones.
CAP = 60000
#: How much the enlarged images are scaled up (about 1 megapixel).
ENLARGE = 4.3


def test_capped_hw_keeps_the_aspect_ratio_under_the_cap():
    for hw, cap in [((4000, 6000), DEFAULT_MAX_PIXELS), ((3000, 4000), 10**6),
                    ((1, 100000), 1000), ((777, 1301), 12345)]:
        h, w = capped_hw(hw, cap)
        assert h * w <= cap
        assert (h + 1) * (w + 1) > cap  # not needlessly small
        assert abs(h / w - hw[0] / hw[1]) <= 1 / min(h, w)
    assert capped_hw((480, 640), 480 * 640) is None
    assert capped_hw((6000, 4000), 0) is None


def test_default_cap_leaves_voc_and_coco_images_alone():
    """VOC (<= 500 px a side) and COCO (<= 640) never reach the default:
    their labels do not change; full HD neither."""
    assert PseudoLabelConfig().max_pixels == DEFAULT_MAX_PIXELS
    for hw in [(500, 500), (640, 640), (1080, 1920), (1024, 2048)]:
        assert capped_hw(hw, DEFAULT_MAX_PIXELS) is None
    assert capped_hw((4000, 6000), DEFAULT_MAX_PIXELS) is not None


def test_max_pixels_must_be_a_non_negative_integer():
    from tools.gen_pseudo_labels import parse_args
    for bad in (-1, 1.5, '100', True):
        with pytest.raises(ValueError, match='max_pixels'):
            PseudoLabelConfig(max_pixels=bad)
    assert PseudoLabelConfig(max_pixels=None).max_pixels == 0
    assert PseudoLabelConfig(max_pixels=np.int64(7)).max_pixels == 7
    with pytest.raises(SystemExit):
        parse_args(['c.py', 'k.pth', '--out-dir', 'o', '--max-pixels', '-5'])
    args = parse_args(['c.py', 'k.pth', '--out-dir', 'o', '--max-pixels', '0'])
    assert args.max_pixels == 0


def test_box_pixel_ranges_match_pixel_box_masks():
    rng = np.random.default_rng(0)
    hw = (37, 53)
    boxes = rng.uniform(-10, 60, (40, 4)).astype(np.float32)
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(-2, 30, (40, 2))
    boxes[:5] = np.round(boxes[:5])  # edges on pixel borders
    boxes[5] = [3.5, 2.5, 9.5, 7.5]  # edges on pixel centres
    masks = pixel_box_masks(boxes, hw).numpy()
    for mask, (y0, y1, x0, x1) in zip(masks, box_pixel_ranges(boxes, hw)):
        ranged = np.zeros(hw, bool)
        ranged[y0:y1, x0:x1] = True
        assert (ranged == mask).all()


def test_labels_at_size_cut_to_the_boxes_at_full_resolution():
    """Nearest upsampling alone lets a class spill past its box edge (up to
    a scale step); the restored map has it only inside its own boxes."""
    import mmcv
    small = np.zeros((10, 10), np.uint8)
    small[2:7, 3:8] = 2  # class 1 (map id 2), as labelled at 10 x 10
    small[7:9, 1:3] = 4  # class 3, but its full-size box is elsewhere
    hw = (43, 47)
    boxes = np.array(
        [[15.2, 10.4, 36.0, 29.7], [40, 40, 47, 43], [0, 0, 6, 6]], np.float32)
    labels = np.array([1, 3, 0])
    out = labels_at_size(small, OriginalSize(hw, boxes, labels))
    naive = mmcv.imresize(small, (hw[1], hw[0]), interpolation='nearest')
    assert out.shape == hw and out.dtype == np.uint8
    masks = pixel_box_masks(boxes, hw).numpy()
    assert ((naive == 2) & ~masks[0]).any()  # the leak this is about
    assert not ((out == 2) & ~masks[0]).any()
    assert not (out == 4).any()  # no pixel of it inside its box
    assert (out[masks[0]] == naive[masks[0]]).all()  # inside: unchanged
    assert not out[~masks.any(axis=0)].any()  # outside every box: 0


def _enlarge(root: str, stem: str, factor: float) -> tuple:
    """Scale image ``stem`` of the VOC-layout ``root`` and its boxes up by
    ``factor`` in place; return its new (height, width)."""
    import cv2
    path = osp.join(root, 'JPEGImages', f'{stem}.jpg')
    image = cv2.imread(path)
    H, W = (round(v * factor) for v in image.shape[:2])
    cv2.imwrite(path, cv2.resize(image, (W, H), interpolation=cv2.INTER_CUBIC))
    xml = osp.join(root, 'Annotations', f'{stem}.xml')
    tree = ET.parse(xml)
    tree.find('size/height').text, tree.find('size/width').text = str(H), \
        str(W)
    for box in tree.getroot().iter('bndbox'):
        for key, limit in (('xmin', W), ('ymin', H)):  # 1-based first pixel
            node = box.find(key)
            value = round((float(node.text) - 1) * factor) + 1
            node.text = str(min(max(value, 1), limit))
        for key, limit in (('xmax', W), ('ymax', H)):  # last pixel
            node = box.find(key)
            node.text = str(min(round(float(node.text) * factor), limit))
    tree.write(xml)
    return H, W


def _allowed(root: str, stem: str) -> np.ndarray:
    """(H, W, 1 + L) bool: which map ids each pixel may take (background
    anywhere, class c only inside a box of class c; VOC boxes are 1-based
    inclusive)."""
    tree = ET.parse(osp.join(root, 'Annotations', f'{stem}.xml')).getroot()
    H, W = (int(tree.find(f'size/{k}').text) for k in ('height', 'width'))
    allowed = np.zeros((H, W, len(CLASSES) + 1), bool)
    allowed[..., 0] = True
    for obj in tree.findall('object'):
        c = CLASSES.index(obj.find('name').text) + 1
        x1, y1, x2, y2 = (
            int(float(obj.find(f'bndbox/{k}').text))
            for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        allowed[y1 - 1:y2, x1 - 1:x2, c] = True
    return allowed


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    return make_checkpoint(str(tmp_path_factory.mktemp('ckpt') / 's1.pth'))


@pytest.fixture(scope='module')
def large_root(synthetic_root, tmp_path_factory):
    """The synthetic val split with its first two images enlarged to about
    1 megapixel (above ``CAP``); returns (root, {stem: (H, W)})."""
    root = str(tmp_path_factory.mktemp('large') / 'data')
    shutil.copytree(synthetic_root, root)
    stems = _ids(root, VAL)[:2]
    return root, {stem: _enlarge(root, stem, ENLARGE) for stem in stems}


@pytest.fixture(scope='module')
def capped_run(large_root, checkpoint, tmp_path_factory):
    root, _ = large_root
    out = str(tmp_path_factory.mktemp('capped') / 'labels')
    run = _run([
        CONFIG, checkpoint, '--data-root', root, '--out-dir', out, '--split',
        VAL, '--workers', '1', '--num-vis', '1', '--no-eval', '--max-pixels',
        str(CAP)
    ])
    return out, run


def test_large_image_is_labelled_capped_and_written_at_its_size(
        large_root, capped_run):
    root, enlarged = large_root
    out, run = capped_run
    assert run['written'] == 6 and not run['failed']
    assert [d['image'] for d in run['downscaled']] == list(enlarged)
    for entry in run['downscaled']:
        H, W = entry['size']
        h, w = entry['at']
        assert (H, W) == enlarged[entry['image']] and H * W > CAP
        assert h * w <= CAP and abs(h / w - H / W) < 0.02
    with open(osp.join(out, 'run.json')) as f:
        assert json.load(f)['downscaled'] == run['downscaled']
    for stem in _ids(root, VAL):
        allowed = _allowed(root, stem)
        for kind in ('Ycrf', 'Yret'):
            label = read_label_png(osp.join(out, kind, f'{stem}.png'))
            assert label.shape == allowed.shape[:2], (kind, stem)
            # the box constraint, exactly, at the written (original) size
            ok = np.take_along_axis(
                allowed, label[..., None].astype(int), axis=2)
            assert ok.all(), (kind, stem)
    assert osp.isfile(osp.join(out, 'vis', f'{list(enlarged)[0]}.jpg'))


def test_labels_below_the_cap_are_unchanged_and_off_still_works(
        large_root, capped_run, checkpoint, tmp_path):
    """With the cap off the large images are labelled at full size (same
    file sizes); every image below the cap gets byte-identical files."""
    root, enlarged = large_root
    capped, _ = capped_run
    out = str(tmp_path / 'uncapped')
    run = _run([
        CONFIG, checkpoint, '--data-root', root, '--out-dir', out, '--split',
        VAL, '--workers', '0', '--num-vis', '0', '--no-eval', '--max-pixels',
        '0'
    ])
    assert run['written'] == 6 and run['downscaled'] == []
    with open(osp.join(out, 'fingerprint.json')) as f:
        assert json.load(f)['labels']['max_pixels'] == 0
    on, off = _digests(capped), _digests(out)
    assert on.keys() == off.keys()
    small = [k for k in on if osp.splitext(osp.basename(k))[0] not in enlarged]
    assert len(small) == 2 * 4
    assert all(on[k] == off[k] for k in small)
    for stem, hw in enlarged.items():
        for kind in ('Ycrf', 'Yret'):
            label = read_label_png(osp.join(out, kind, f'{stem}.png'))
            assert label.shape == hw


def test_the_cap_is_in_the_fingerprint(large_root, capped_run, checkpoint):
    """A rerun with another cap would write other labels: it stops (and
    with --overwrite redoes them) instead of resuming."""
    from bana_mm.apis.stage2 import StaleLabelsError
    root, enlarged = large_root
    out, _ = capped_run
    with open(osp.join(out, 'fingerprint.json')) as f:
        assert json.load(f)['labels']['max_pixels'] == CAP
    args = [
        CONFIG, checkpoint, '--data-root', root, '--out-dir', out, '--split',
        VAL, '--workers', '0', '--num-vis', '0', '--no-eval'
    ]
    with pytest.raises(StaleLabelsError, match='differs in: labels'):
        _run(args + ['--max-pixels', str(CAP // 2)])
    same = _run(args + ['--max-pixels', str(CAP)])
    assert same['written'] == 0 and same['skipped'] == 6


def test_network_features_scale_image_and_boxes(large_root, checkpoint):
    """The network sees the capped image, the boxes follow it, and the
    original size and boxes come back for the labels."""
    from mmengine.config import Config

    from bana_mm.apis.stage2 import load_stage1_model
    from bana_mm.det.pseudo_label_data import (build_label_dataset,
                                               network_features)
    root, enlarged = large_root
    cfg = Config.fromfile(CONFIG)
    model, _ = load_stage1_model(cfg, checkpoint, 'cpu')
    dataset = build_label_dataset(cfg, root, VAL)
    item = dataset[0]
    full = network_features(model, item, 0)
    capped = network_features(model, item, CAP)
    assert full[-1] is None
    original = capped[-1]
    H, W = enlarged[_ids(root, VAL)[0]]
    assert original.image_hw == (H, W) == full[2].shape[:2]
    h, w = capped[2].shape[:2]
    assert h * w <= CAP and capped[1] == (h, w)
    assert capped[0].shape[-2:] != full[0].shape[-2:]
    assert np.allclose(original.boxes, full[3].numpy())
    scale = torch.tensor([w / W, h / H, w / W, h / H])
    assert torch.allclose(capped[3], full[3] * scale)
    assert torch.equal(capped[4], full[4])
