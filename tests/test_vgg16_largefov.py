"""Tests of the VGG-16 LargeFOV backbone and its weight loading (SPEC §1)."""
import logging
from contextlib import contextmanager

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger

import bana_mm  # noqa: F401  (registers VGG16LargeFOV)
from bana_mm.models.backbones import VGG16LargeFOV, load_vgg16_weights

CONV_NAMES = [
    'conv1_1', 'conv1_2', 'conv2_1', 'conv2_2', 'conv3_1', 'conv3_2',
    'conv3_3', 'conv4_1', 'conv4_2', 'conv4_3', 'conv5_1', 'conv5_2', 'conv5_3'
]
CONV_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
# torchvision vgg16 ``features`` indices of the 13 convs.
TV_CONV_IDS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


@contextmanager
def captured_log():
    """Collect the messages mmengine's current logger emits."""
    records = []

    class _Handler(logging.Handler):

        def emit(self, record):
            records.append(record)

    handler = _Handler(level=logging.DEBUG)
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def warnings_of(records):
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING]


def torchvision_conv_state(width_mult=1.0, seed=0):
    """Random conv weights in torchvision's vgg16 ``features.N`` layout."""
    gen = torch.Generator().manual_seed(seed)
    state, cin = {}, 3
    for idx, cout in zip(TV_CONV_IDS, CONV_CHANNELS):
        cout = max(1, int(cout * width_mult))
        state[f'features.{idx}.weight'] = torch.randn(
            cout, cin, 3, 3, generator=gen)
        state[f'features.{idx}.bias'] = torch.randn(cout, generator=gen)
        cin = cout
    return state


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize('size,out', [(321, 41), (161, 21), (65, 9)])
@pytest.mark.parametrize('fc6_dilation', [1, 12])
def test_output_shape_full_width(size, out, fc6_dilation):
    # The meta device gives exact shapes of the full-width net at no cost.
    with torch.device('meta'):
        model = VGG16LargeFOV(fc6_dilation=fc6_dilation).eval()
        feats = model(torch.empty(1, 3, size, size))
    assert isinstance(feats, tuple) and len(feats) == 1
    assert feats[0].shape == (1, 1024, out, out)
    assert model.out_channels == 1024


def test_real_forward_width_mult():
    model = VGG16LargeFOV(width_mult=0.25)
    model.init_weights()
    model.eval()
    assert model.out_channels == 256
    with torch.no_grad():
        (feat, ) = model(torch.randn(2, 3, 321, 321))
    assert feat.shape == (2, 256, 41, 41)
    assert torch.isfinite(feat).all() and (feat >= 0).all()
    assert feat.abs().sum() > 0


@pytest.mark.parametrize('size', [64, 65, 129, 96])
def test_output_stride_8(size):
    model = VGG16LargeFOV(width_mult=0.0625, fc6_dilation=12).eval()
    with torch.no_grad():
        (feat, ) = model(torch.randn(1, 3, size, size + 8))
    # Three stride-2 pools with kernel 3, pad 1: ceil(size / 8).
    expected = [-(-s // 8) for s in (size, size + 8)]
    assert list(feat.shape[2:]) == expected


def test_train_mode_dropout_is_stochastic():
    torch.manual_seed(0)
    model = VGG16LargeFOV(width_mult=0.0625).train()
    x = torch.randn(1, 3, 33, 33)
    a, b = model(x)[0], model(x)[0]
    assert not torch.equal(a, b)
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])


# ---------------------------------------------------------- configuration


def test_layer_config():
    model = VGG16LargeFOV(fc6_dilation=12)
    cin = 3
    for name, cout in zip(CONV_NAMES, CONV_CHANNELS):
        conv = getattr(model, name)
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        dilation = 2 if name.startswith('conv5') else 1
        assert conv.kernel_size == (3, 3)
        assert conv.in_channels == cin and conv.out_channels == cout
        assert conv.dilation == (dilation, dilation)
        assert conv.padding == (dilation, dilation)
        assert conv.stride == (1, 1)
        cin = cout

    for i, stride in enumerate([2, 2, 2, 1, 1], start=1):
        pool = getattr(model, f'pool{i}')
        assert isinstance(pool, nn.MaxPool2d)
        assert (pool.kernel_size, pool.stride, pool.padding) == (3, stride, 1)
    assert isinstance(model.pool5a, nn.AvgPool2d)
    assert (model.pool5a.kernel_size, model.pool5a.stride,
            model.pool5a.padding) == (3, 1, 1)

    assert model.fc6.kernel_size == (3, 3)
    assert model.fc6.dilation == (12, 12) and model.fc6.padding == (12, 12)
    assert (model.fc6.in_channels, model.fc6.out_channels) == (512, 1024)
    assert model.fc7.kernel_size == (1, 1)
    assert (model.fc7.in_channels, model.fc7.out_channels) == (1024, 1024)
    for drop in (model.drop6, model.drop7):
        assert isinstance(drop, nn.Dropout2d) and drop.p == 0.5

    assert VGG16LargeFOV().fc6.dilation == (1, 1)
    assert VGG16LargeFOV(dropout_ratio=0.1).drop7.p == 0.1

    expected_keys = [
        f'{n}.{p}' for n in CONV_NAMES + ['fc6', 'fc7']
        for p in ('weight', 'bias')
    ]
    assert list(model.state_dict()) == expected_keys


def test_width_mult_channels():
    model = VGG16LargeFOV(width_mult=0.25)
    assert model.conv1_1.in_channels == 3
    assert model.conv1_1.out_channels == 16
    assert model.conv5_3.out_channels == 128
    assert model.fc6.in_channels == 128 and model.fc6.out_channels == 256
    assert model.fc7.out_channels == 256 and model.out_channels == 256


def test_invalid_args():
    with pytest.raises(ValueError, match='frozen_stages'):
        VGG16LargeFOV(frozen_stages=6)
    with pytest.raises(ValueError, match='width_mult'):
        VGG16LargeFOV(width_mult=0)


def test_default_init_is_kaiming_normal():
    torch.manual_seed(0)
    model = VGG16LargeFOV(width_mult=0.5)
    model.init_weights()
    for name in ('conv3_2', 'conv5_1', 'fc6'):
        conv = getattr(model, name)
        fan_out = conv.out_channels * conv.kernel_size[0]**2
        std = (2.0 / fan_out)**0.5
        assert conv.weight.std().item() == pytest.approx(std, rel=0.05)
        assert conv.weight.mean().abs().item() < 0.1 * std
        assert torch.count_nonzero(conv.bias) == 0


def test_frozen_stages():
    model = VGG16LargeFOV(width_mult=0.0625, frozen_stages=2)
    model.train()
    frozen = {'conv1_1', 'conv1_2', 'conv2_1', 'conv2_2'}
    for name in CONV_NAMES + ['fc6', 'fc7']:
        for param in getattr(model, name).parameters():
            assert param.requires_grad == (name not in frozen), name
    model(torch.randn(1, 3, 17, 17))[0].sum().backward()
    assert model.conv2_2.weight.grad is None
    assert model.conv3_1.weight.grad is not None


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_build_from_registry(scope):
    import importlib

    from mmengine.registry import init_default_scope
    registry = importlib.import_module(f'{scope}.registry').MODELS
    init_default_scope(scope)
    model = registry.build(
        dict(type='VGG16LargeFOV', fc6_dilation=12, width_mult=0.125))
    assert isinstance(model, VGG16LargeFOV)
    assert model.fc6.dilation == (12, 12) and model.out_channels == 128


# ---------------------------------------------------------- weight loading


def test_torchvision_layout_is_refused_with_the_converter_named():
    """A raw torchvision vgg16 (RGB mean/std input, 4096-wide fc) would be
    misread by this Caffe-BGR backbone: refused, nothing loaded."""
    model = VGG16LargeFOV(width_mult=0.0625)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torchvision_conv_state(width_mult=0.0625)
    state['classifier.0.weight'] = torch.randn(8, 16)
    with pytest.raises(ValueError) as exc:
        load_vgg16_weights(model, state)
    assert 'tools/model_converters/vgg16_to_largefov.py' in str(exc.value)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_load_torchvision_rejects_bn_layout():
    state = torchvision_conv_state(width_mult=0.0625)
    state['features.1.running_mean'] = torch.zeros(4)
    with pytest.raises(ValueError, match='vgg16_bn'):
        load_vgg16_weights(VGG16LargeFOV(width_mult=0.0625), state)


def test_load_deeplab_layout_with_fc_mismatch():
    model = VGG16LargeFOV(width_mult=0.25)
    src = VGG16LargeFOV(width_mult=0.25).state_dict()
    state = {}
    for key, value in src.items():
        name, param = key.split('.')
        state[f'{name}.0.{param}'] = torch.randn_like(value)
    # e.g. DeepLab's original fc6 (4096 x 512 x 7 x 7), scaled down.
    state['fc6.0.weight'] = torch.randn(32, 128, 7, 7)
    state['fc6.0.bias'] = torch.randn(32)
    fc6_before = model.fc6.weight.clone()
    with captured_log() as records:
        report = load_vgg16_weights(model, {'state_dict': state}, strict=True)
    assert torch.equal(model.conv4_2.weight, state['conv4_2.0.weight'])
    assert torch.equal(model.fc7.weight, state['fc7.0.weight'])
    assert torch.equal(model.fc7.bias, state['fc7.0.bias'])
    assert torch.equal(model.fc6.weight, fc6_before)
    assert set(report['skipped']) == {'fc6.0.weight', 'fc6.0.bias'}
    msgs = warnings_of(records)
    assert any('fc6.0.weight' in m and '(32, 128, 7, 7)' in m
               and '(256, 128, 3, 3)' in m for m in msgs)


def test_conv_shape_mismatch_strict_and_not():
    state = VGG16LargeFOV(width_mult=0.125).state_dict()
    state['conv3_2.weight'] = torch.randn(32, 32, 1, 1)
    model = VGG16LargeFOV(width_mult=0.125)
    with pytest.raises(ValueError) as exc:
        load_vgg16_weights(model, state, strict=True)
    msg = str(exc.value)
    assert 'conv3_2.weight' in msg and '(32, 32, 1, 1)' in msg
    assert '(32, 32, 3, 3)' in msg

    with captured_log() as records:
        report = load_vgg16_weights(model, state, strict=False)
    assert 'conv3_2.weight' in report['skipped']
    assert 'conv3_2.weight' in report['missing']
    assert torch.equal(model.conv3_3.weight, state['conv3_3.weight'])
    assert any('conv3_2.weight' in m for m in warnings_of(records))


def test_strict_requires_all_conv_layers():
    state = VGG16LargeFOV(width_mult=0.0625).state_dict()
    del state['conv5_3.bias']
    model = VGG16LargeFOV(width_mult=0.0625)
    with pytest.raises(ValueError, match='conv5_3.bias'):
        load_vgg16_weights(model, state, strict=True)
    report = load_vgg16_weights(model, state)
    assert report['missing'] == ['conv5_3.bias']


def test_init_cfg_pretrained_own_names(tmp_path):
    src = VGG16LargeFOV(width_mult=0.125)
    src.init_weights()
    path = str(tmp_path / 'own.pth')
    torch.save(src.state_dict(), path)
    model = VGG16LargeFOV(
        width_mult=0.125, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    for key, value in src.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_init_cfg_pretrained_refuses_torchvision_and_reads_prefix(tmp_path):
    tv_path = str(tmp_path / 'tv.pth')
    torch.save(torchvision_conv_state(width_mult=0.125), tv_path)
    model = VGG16LargeFOV(
        width_mult=0.125, init_cfg=dict(type='Pretrained', checkpoint=tv_path))
    with pytest.raises(ValueError, match='vgg16_to_largefov.py') as exc:
        model.init_weights()
    assert tv_path in str(exc.value)

    # A full-model mmengine checkpoint, selected with ``prefix``.
    src = VGG16LargeFOV(width_mult=0.125)
    src.init_weights()
    full_path = str(tmp_path / 'full.pth')
    torch.save(
        {
            'meta': {},
            'state_dict': {
                f'backbone.{k}': v
                for k, v in src.state_dict().items()
            }
        }, full_path)
    other = VGG16LargeFOV(
        width_mult=0.125,
        init_cfg=dict(
            type='Pretrained', checkpoint=full_path, prefix='backbone.'))
    other.init_weights()
    for key, value in src.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
