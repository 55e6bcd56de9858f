"""Mask R-CNN with the agreement-only loss through tools/train.py and
tools/test.py on coco128's real images (issue 5 "done when"): pseudo masks are
dev jsons built from the real masks (Ycrf = GT, Yret = GT eroded), evaluation
is mmdet's CocoMetric on the real masks. Shrunk further than the tiny preset
(ResNet-18, 128 px, 2 iterations, 3 val images) to keep the test short."""
import os.path as osp

import pytest

from coco_pseudo_fixtures import write_dev_pseudo_pair
from conftest import REPO, SHARED_DATA

CONFIGS = osp.join(REPO, 'configs', 'bana')
TINY = osp.join(CONFIGS, 'mask-rcnn_r50_fpn_agreement_coco_tiny.py')


@pytest.fixture(scope='module')
def coco128_coco() -> str:
    root = osp.join(SHARED_DATA, 'coco128_coco')
    if not osp.isdir(root):
        pytest.skip('../shared/data/coco128_coco is not available')
    return root + '/'


@pytest.fixture(scope='module')
def dev_pseudo(coco128_coco, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('coco_pseudo'))
    return write_dev_pseudo_pair(
        osp.join(coco128_coco, 'annotations', 'instances_train.json'), out)


def _options(root, ycrf, yret, work_dir):
    val_ann = osp.join(root, 'annotations', 'instances_val.json')
    opts = {
        'train_dataloader.dataset.data_root': root,
        'train_dataloader.dataset.ann_file': ycrf,
        'train_dataloader.dataset.ret_ann_file': yret,
        'train_dataloader.dataset.pipeline.2.scale': (128, 128),
        'val_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.indices': 3,
        'val_dataloader.dataset.pipeline.1.scale': (128, 128),
        'test_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.indices': 3,
        'test_dataloader.dataset.pipeline.1.scale': (128, 128),
        'val_evaluator.ann_file': val_ann,
        'test_evaluator.ann_file': val_ann,
        'model.backbone.depth': 18,
        'model.neck.in_channels': [64, 128, 256, 512],
        'model.roi_head.mask_head.num_convs': 1,
        'model.train_cfg.rpn_proposal.max_per_img': 200,
        'model.train_cfg.rcnn.sampler.num': 64,
        'model.test_cfg.rpn.max_per_img': 100,
        'model.test_cfg.rcnn.max_per_img': 10,
        'train_cfg.max_iters': 2,
        'train_cfg.val_begin': 100,  # no validation: tools/test.py below
        'default_hooks.checkpoint.interval': 2,
        'default_hooks.logger.interval': 1,
    }
    return ['--work-dir', work_dir, '--cfg-options'
            ] + [f'{k}={_fmt(v)}' for k, v in opts.items()]


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return '(' + ','.join(map(str, value)) + ')'
    if isinstance(value, list):
        return '[' + ','.join(map(str, value)) + ']'
    return str(value)


def test_train_and_test_tools_on_coco128(coco128_coco, dev_pseudo, tmp_path):
    from tools import test as test_tool
    from tools import train as train_tool
    ycrf, yret = dev_pseudo
    work = str(tmp_path / 'mask_rcnn')
    runner = train_tool.main([TINY] + _options(coco128_coco, ycrf, yret, work))
    scalars = runner.message_hub.log_scalars
    loss_mask = scalars['train/loss_mask'].current()
    assert 0 < loss_mask < 5
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)
    metrics = test_tool.main(
        [TINY, ckpt] +
        _options(coco128_coco, ycrf, yret, str(tmp_path / 'test')))
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert key in metrics and 0.0 <= metrics[key] <= 1.0
