"""The paper recipe in the configs (SPEC §1, §3; issue 9 items 5-7): jitter,
learning rates per parameter, DenseCRF at test time only, TTA scales."""
import copy
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import bana_mm  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs', 'bana')
V1 = [
    'deeplabv1_nal_voc.py', 'deeplabv1_ce-crf_voc.py',
    'deeplabv1_bootstrap_voc.py', 'deeplabv1_nal-dp_voc.py',
    'deeplabv1_nal_semi_voc.py'
]
V2 = [
    'deeplabv2_nal_voc.py', 'deeplabv2_er_voc.py', 'deeplabv2_nal_semi_voc.py'
]


def load(name):
    return Config.fromfile(osp.join(CONFIGS, name))


def transform_types(pipeline):
    return [t['type'] for t in pipeline]


@pytest.mark.parametrize(
    'name', ['bap_vgg16_voc.py', 'gap_vgg16_voc.py', 'bap_vgg16_coco.py'] + V1)
def test_authors_jitter_in_stage1_and_v1(name):
    types = transform_types(load(name).train_dataloader.dataset.pipeline)
    assert 'PhotoMetricDistortion' not in types
    jitter = [
        t for t in load(name).train_dataloader.dataset.pipeline
        if t['type'] == 'BANAColorJitter'
    ]
    assert len(jitter) == 1
    assert (jitter[0].brightness, jitter[0].contrast,
            jitter[0].saturation) == (0.5, 0.5, 0.5)


def test_v1_param_groups():
    """V1: weights 1e-3 with decay, biases 2e-3 without, classifier x10."""
    init_default_scope('mmseg')
    from mmseg.registry import MODELS

    import bana_mm.seg  # noqa: F401
    cfg = load('deeplabv1_nal_voc.py')
    mcfg = copy.deepcopy(cfg.model)
    mcfg.backbone.update(width_mult=0.0625, init_cfg=None)
    mcfg.decode_head.in_channels = 64
    model = MODELS.build(mcfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            groups[id(p)] = (group['lr'], group['weight_decay'])
    named = dict(model.named_parameters())
    assert groups[id(named['backbone.conv3_1.weight'])] == (1e-3, 5e-4)
    assert groups[id(named['backbone.conv3_1.bias'])] == (2e-3, 0.0)
    assert groups[id(named['backbone.fc7.bias'])] == (2e-3, 0.0)
    head = [k for k in named if k.startswith('decode_head')]
    assert head
    for key in head:
        assert groups[id(named[key])] == (pytest.approx(1e-2), 5e-4), key


@pytest.mark.parametrize('name', V2)
def test_v2_learning_rate(name):
    cfg = load(name)
    assert cfg.optim_wrapper.optimizer.lr == 2.5e-4
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {
        'decode_head': dict(lr_mult=10.0)
    }
    assert 'bias_lr_mult' not in cfg.optim_wrapper.paramwise_cfg


@pytest.mark.parametrize('name,bilateral,gaussian', [
    ('deeplabv1_nal_voc.py', dict(sxy=121, srgb=5,
                                  compat=4), dict(sxy=3, compat=3)),
    ('deeplabv2_nal_voc.py', dict(sxy=67, srgb=3,
                                  compat=4), dict(sxy=1, compat=3)),
])
def test_crf_at_test_only(name, bilateral, gaussian):
    from tools.test import parse_args, set_test_crf
    cfg = load(name)
    crf = cfg.model.test_cfg.crf
    # validation during training: no CRF
    assert crf.enabled is False and cfg.crf_at_test is True
    assert crf.bilateral == bilateral and crf.gaussian == gaussian
    assert crf.iterations == 10
    test_cfg = copy.deepcopy(cfg)
    set_test_crf(test_cfg, no_crf=False)
    assert test_cfg.model.test_cfg.crf.enabled is True
    raw = copy.deepcopy(cfg)
    raw.tta_model.crf = dict(enabled=True)
    set_test_crf(raw, no_crf=True)
    assert raw.model.test_cfg.crf.enabled is False and raw.tta_model.crf is \
        None
    assert parse_args(['c.py', 'k.pth', '--no-crf']).no_crf
    # a config without crf_at_test keeps whatever the model says
    cfg.crf_at_test = False
    set_test_crf(cfg, no_crf=False)
    assert cfg.model.test_cfg.crf.enabled is False
    cfg.crf_at_test = True
    cfg.model.test_cfg.pop('crf')
    with pytest.raises(ValueError, match='crf_at_test'):
        set_test_crf(cfg, no_crf=False)


@pytest.mark.parametrize('name', V1[:1] + V2[:1])
def test_tta_scales_and_alignment(name):
    cfg = load(name)
    tta = cfg.tta_pipeline[1].transforms
    assert [t['scale_factor'] for t in tta[0]] == [0.5, 0.75, 1.0, 1.5]
    assert [t['prob'] for t in tta[1]] == [0.0, 1.0]
    assert cfg.model.decode_head.align_corners is True


def test_semi_and_coco_stage1_configs():
    semi = load('deeplabv1_nal_semi_voc.py').train_dataloader.dataset
    assert semi.gt_ids == 'ImageSets/Segmentation/train.txt'
    assert semi.type == 'PseudoLabelVOCDataset'
    coco = load('bap_vgg16_coco.py')
    assert coco.model.head.num_classes == 80
    assert coco.train_dataloader.dataset.type == 'CocoBoxDataset'
    assert coco.train_dataloader.dataset.ann_file == \
        'annotations/instances_train2017.json'
    assert coco.train_cfg.max_iters == 88000
