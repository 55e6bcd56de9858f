"""The Lite0 Mask R-CNN preset (mask-rcnn_lite0_fpn_agreement_coco.py) and
the Lite0 stage-1 COCO preset (bap_lite0_coco.py): the configs build the
networks they describe, and the Mask R-CNN does one training step through
tools/train.py (agreement loss on dev pseudo masks, ImageNet backbone) and a
test-mode forward through tools/test.py (mmdet's CocoMetric) on a few coco128
images shrunk to 96 px."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from coco_pseudo_fixtures import write_dev_pseudo_pair
from conftest import REPO, SHARED_DATA

CONFIGS = osp.join(REPO, 'configs', 'bana')
LITE0_MRCNN = osp.join(CONFIGS, 'mask-rcnn_lite0_fpn_agreement_coco.py')
LITE0_BAP_COCO = osp.join(CONFIGS, 'bap_lite0_coco.py')


def _build(cfg_model):
    from mmdet.registry import MODELS

    import bana_mm.det  # noqa: F401  (custom_imports of the configs)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(copy.deepcopy(cfg_model))


def test_lite0_mask_rcnn_config_builds_the_described_network():
    from bana_mm.det.agreement_mask_head import AgreementFCNMaskHead
    from bana_mm.models.backbones.efficientnet_lite import (LITE0_MEAN,
                                                            LITE0_STD,
                                                            EfficientNetLite0)
    cfg = Config.fromfile(LITE0_MRCNN)
    assert cfg.model.data_preprocessor.mean == list(LITE0_MEAN)
    assert cfg.model.data_preprocessor.std == list(LITE0_STD)
    assert cfg.model.data_preprocessor.bgr_to_rgb is True
    cfg.model.backbone.pretrained = False
    model = _build(cfg.model)
    backbone = model.backbone
    assert isinstance(backbone, EfficientNetLite0)
    # levels 1-4 at output stride 32: the strides of mmdet's FPN / anchors
    assert backbone.strides == (4, 8, 16, 32)
    assert list(model.neck.in_channels) == list(
        backbone.out_channels) == [24, 40, 112, 320]
    assert list(model.rpn_head.prior_generator.strides) == [(4, 4), (8, 8),
                                                            (16, 16), (32, 32),
                                                            (64, 64)]
    # GroupNorm in the FPN: Lite0's levels are not unit scale
    assert all(conv.with_norm for conv in model.neck.fpn_convs)
    assert model.roi_head.bbox_roi_extractor.featmap_strides == [4, 8, 16, 32]
    assert isinstance(model.roi_head.mask_head, AgreementFCNMaskHead)
    assert model.roi_head.mask_head.packed
    # the neck's width reaches every head
    width = model.neck.out_channels
    assert model.roi_head.mask_head.in_channels == width
    assert model.roi_head.bbox_head.in_channels == width
    # stem and the stride-2 / stride-4 blocks are frozen, BN stays in eval
    model.train()
    net = backbone.net
    frozen = [net.conv_stem, net.bn1, net.blocks[0], net.blocks[1]]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in net.blocks[2].parameters())
    assert not any(m.training for m in backbone.modules()
                   if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    x = torch.zeros(1, 3, 64, 96)
    feats = model.neck(backbone(x))
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (4, 6),
                                                    (2, 3), (1, 2)]


def test_lite0_stage1_coco_config():
    cfg = Config.fromfile(LITE0_BAP_COCO)
    voc = Config.fromfile(osp.join(CONFIGS, 'bap_lite0_voc.py'))
    assert cfg.model.head.num_classes == 80
    assert cfg.model.backbone == voc.model.backbone
    assert cfg.model.data_preprocessor == voc.model.data_preprocessor
    assert cfg.train_dataloader.dataset.pipeline == \
        voc.train_dataloader.dataset.pipeline
    for loader, split in ((cfg.train_dataloader, 'train'), (cfg.val_dataloader,
                                                            'val')):
        assert loader.dataset.type == 'CocoBoxDataset'
        assert loader.dataset.metainfo is None  # the 80 COCO classes
        assert loader.dataset.ann_file == f'annotations/instances_{split}.json'
    cfg.model.backbone.pretrained = False
    model = _build(cfg.model)
    assert model.head.num_classes == 80


@pytest.fixture(scope='module')
def coco128_coco() -> str:
    root = osp.join(SHARED_DATA, 'coco128_coco')
    if not osp.isdir(root):
        pytest.skip('../shared/data/coco128_coco is not available')
    return root + '/'


def _options(root, ycrf, yret, work_dir):
    val_ann = osp.join(root, 'annotations', 'instances_val.json')
    opts = {
        'train_dataloader.dataset.data_root': root,
        'train_dataloader.dataset.ann_file': ycrf,
        'train_dataloader.dataset.ret_ann_file': yret,
        'train_dataloader.dataset.indices': 4,
        'train_dataloader.dataset.pipeline.2.scale': '(96,96)',
        'val_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.indices': 2,
        'val_dataloader.dataset.pipeline.1.scale': '(96,96)',
        'test_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.indices': 2,
        'test_dataloader.dataset.pipeline.1.scale': '(96,96)',
        'val_evaluator.ann_file': val_ann,
        'test_evaluator.ann_file': val_ann,
        'model.train_cfg.rpn_proposal.max_per_img': 100,
        'model.train_cfg.rcnn.sampler.num': 32,
        'model.test_cfg.rpn.max_per_img': 50,
        'model.test_cfg.rcnn.max_per_img': 10,
        'train_cfg.max_iters': 1,
        'train_cfg.val_begin': 100,  # no validation: tools/test.py below
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.logger.interval': 1,
    }
    return ['--work-dir', work_dir, '--cfg-options'
            ] + [f'{k}={v}' for k, v in opts.items()]


def test_lite0_mask_rcnn_trains_and_tests(coco128_coco, tmp_path):
    from bana_mm.models.backbones.efficientnet_lite import \
        lite0_imagenet_state_dict
    from tools import test as test_tool
    from tools import train as train_tool
    ycrf, yret = write_dev_pseudo_pair(
        osp.join(coco128_coco, 'annotations', 'instances_train.json'),
        str(tmp_path))
    work = str(tmp_path / 'mask_rcnn')
    runner = train_tool.main([LITE0_MRCNN] +
                             _options(coco128_coco, ycrf, yret, work))
    scalars = runner.message_hub.log_scalars
    assert 0 < scalars['train/loss_mask'].current() < 10
    # Ycrf = mask, Yret = mask eroded: the pair disagrees on a band
    assert 0 < scalars['train/mask_agreement'].current() < 1
    assert runner.iter == 1
    ckpt = osp.join(work, 'iter_1.pth')
    state = torch.load(ckpt, map_location='cpu', weights_only=False)
    state = state['state_dict']
    imagenet = lite0_imagenet_state_dict()
    # the backbone started from ImageNet: frozen stem unchanged, a trained
    # block moved away from it by the one SGD step
    assert torch.equal(state['backbone.net.conv_stem.weight'],
                       imagenet['conv_stem.weight'])
    key = 'blocks.3.0.conv_pw.weight'
    assert not torch.equal(state['backbone.net.' + key], imagenet[key])
    assert torch.allclose(
        state['backbone.net.' + key], imagenet[key], atol=1e-2)
    metrics = test_tool.main(
        [LITE0_MRCNN, ckpt] +
        _options(coco128_coco, ycrf, yret, str(tmp_path / 'test')))
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert key in metrics and 0.0 <= metrics[key] <= 1.0
