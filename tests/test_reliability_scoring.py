"""Issue 20 class 6: MDH's ground truth and the stage-2 scores get stage
3's checks (file, value, size named); scores say which images they leave
out and the tool exits 3; COCO annotations of unknown images warn; an RLE
mask of another size names the json, the annotation and the image."""
import json
import logging
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from mmengine.logging import MMLogger
from PIL import Image
from test_box_datasets import captured_log, coco, load_coco, warnings_of
from test_mask_agreement_data import _dataset as agreement_dataset
from test_mask_agreement_data import _rewrite, tiny_coco  # noqa: F401
from test_stage2_tool import CONFIG, VAL, _run, make_checkpoint

from bana_mm.utils.io import read_split

CLASSES = ('disc', 'triangle', 'ring', 'star', 'blob')


@pytest.fixture
def own_root(synthetic_root, tmp_path) -> str:
    root = str(tmp_path / 'root')
    shutil.copytree(synthetic_root, root)
    return root


def _gt(root: str, img_id: str) -> str:
    return osp.join(root, 'SegmentationClass', f'{img_id}.png')


def _spoil(path: str, how: str) -> str:
    """Give a ground-truth PNG a value outside the classes, cut it short,
    or make it another size; return what the error must name."""
    label = np.array(Image.open(path))
    if how == 'value':
        label[:2, :3] = 50
        Image.fromarray(label, 'L').save(path)
        return '50 (6 px)'
    if how == 'truncated':
        with open(path, 'rb') as f:
            data = f.read()
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
        return 'not a readable PNG'
    Image.fromarray(label[:-4], 'L').save(path)
    return f'is {label.shape[1]}x{label.shape[0] - 4} (WxH)'


@pytest.mark.parametrize('how', ['value', 'truncated', 'size'])
def test_mdh_ground_truth_problems_name_the_file(own_root, how):
    """Before: IndexError in the loss, a bare OSError, or "stack expects
    each tensor to be equal size"."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS

    import bana_mm.seg  # noqa: F401
    ids = read_split(osp.join(own_root, VAL))
    words = _spoil(_gt(own_root, ids[1]), how)
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = DATASETS.build(
            dict(
                type='MDHVOCDataset',
                data_root=own_root + '/',
                ann_file=VAL,
                metainfo=dict(classes=CLASSES),
                data_prefix=dict(
                    img_path='JPEGImages', seg_map_path='SegmentationClass'),
                box_dir='Annotations',
                pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='LoadAnnotations')
                ]))
        assert dataset[0]['gt_seg_map'].shape
        with pytest.raises(ValueError) as info:
            dataset[1]
    for word in (_gt(own_root, ids[1]), words):
        assert word in str(info.value), (word, str(info.value))


def test_scores_say_which_ground_truth_they_leave_out(own_root, tmp_path):
    """Before: a value of 50 was scored silently, a truncated GT was left
    out with nothing in the log, a missing one was not recorded; rc 0."""
    from tools.gen_pseudo_labels import exit_code
    ids = read_split(osp.join(own_root, VAL))
    _spoil(_gt(own_root, ids[0]), 'value')
    _spoil(_gt(own_root, ids[1]), 'truncated')
    os.unlink(_gt(own_root, ids[2]))
    checkpoint = make_checkpoint(str(tmp_path / 's1.pth'))
    out = str(tmp_path / 'out')
    tool_logger = MMLogger.get_instance('bana_mm_stage2')  # the tool's
    with captured_log() as records:
        # the tool logs its summary to its own logger, which is not mmengine's
        # current one when an earlier test made a newer logger
        collect = logging.Handler(level=logging.DEBUG)
        collect.emit = records.append
        if tool_logger is not MMLogger.get_current_instance():
            tool_logger.addHandler(collect)
        try:
            run = _run([
                CONFIG, checkpoint, '--data-root', own_root, '--out-dir', out,
                '--split', VAL, '--workers', '0', '--num-vis', '0',
                '--no-grabcut'
            ])
        finally:
            tool_logger.removeHandler(collect)
    with open(osp.join(out, 'metrics.json')) as f:
        metrics = json.load(f)
    assert [e['image'] for e in metrics['errors']] == ids[:2]
    assert 'outside the 6 classes' in metrics['errors'][0]['error']
    assert metrics['no_ground_truth'] == [ids[2]]
    assert metrics['evaluated'] == len(ids) - 3
    assert exit_code(run) == 3
    logged = '\n'.join(warnings_of(records))
    assert '2 of 6 image(s) LEFT OUT' in logged and ids[1] in logged
    assert '1 of 6 image(s) have no ground-truth PNG' in logged
    errors = [r.getMessage() for r in records if r.levelname == 'ERROR']
    assert any('2 of 6 images left out of the scores; exit code 3' in m
               for m in errors), errors


@pytest.fixture
def box_root(tmp_path):
    from bana_mm.datagen import generate_synthetic_dataset
    root = tmp_path / 'syn'
    generate_synthetic_dataset(str(root), num_train=4, num_val=2, seed=0)
    return root


def test_coco_annotation_of_an_unknown_image_warns(box_root):
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    data = load_coco(box_root)
    stray = dict(data['annotations'][0], id=999, image_id=12345)
    data['annotations'].append(stray)
    with captured_log() as records:
        _, ann = coco(box_root, data)
    warned = [m for m in warnings_of(records) if 'not in "images"' in m]
    assert len(warned) == 1
    for word in (str(ann), '12345', '999'):
        assert word in warned[0]


def test_rle_of_another_size_names_json_annotation_and_image(
        tiny_coco):  # noqa: F811,E501
    """Before: "mask of size ... in an image of size ..." at loading time,
    naming neither file nor annotation."""
    from bana_mm.core.boxes import BoxAnnotationError
    root, _ = tiny_coco

    def shrink(content):
        content['annotations'][1]['segmentation']['size'] = [10, 12]

    _rewrite(root / 'instances_yret.json', shrink)
    with pytest.raises(BoxAnnotationError) as info:
        agreement_dataset(root)
    message = str(info.value)
    for word in ('instances_yret.json', 'annotation 11', '12x10 (WxH)',
                 str(root / 'images' / '002.jpg')):
        assert word in message, (word, message)
