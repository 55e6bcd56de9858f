"""Tests of the authors' checkpoint converter and its CLI (SPEC §7)."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bana_mm  # noqa: F401
from bana_mm.models.backbones import VGG16LargeFOV
from bana_mm.models.converters.bana_checkpoint import (
    CheckpointConversionError, convert_bana_checkpoint, convert_bana_stage1,
    convert_file)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools', 'convert_bana_checkpoint.py')

# (name, in, out, kernel) of the authors' backbone, written out by hand.
LAYERS = [
    ('conv1_1', 3, 64, 3),
    ('conv1_2', 64, 64, 3),
    ('conv2_1', 64, 128, 3),
    ('conv2_2', 128, 128, 3),
    ('conv3_1', 128, 256, 3),
    ('conv3_2', 256, 256, 3),
    ('conv3_3', 256, 256, 3),
    ('conv4_1', 256, 512, 3),
    ('conv4_2', 512, 512, 3),
    ('conv4_3', 512, 512, 3),
    ('conv5_1', 512, 512, 3),
    ('conv5_2', 512, 512, 3),
    ('conv5_3', 512, 512, 3),
    ('fc6', 512, 1024, 3),
    ('fc7', 1024, 1024, 1),
]


def make_authors_state(num_rows=21, seed=0):
    """Random full-width checkpoint in the authors' stage-1 layout."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, cin, cout, k in LAYERS:
        std = (2.0 / (cin * k * k))**0.5
        state[f'backbone.{name}.weight'] = torch.randn(
            cout, cin, k, k, generator=gen) * std
        state[f'backbone.{name}.bias'] = torch.randn(
            cout, generator=gen) * 0.01
    state['classifier.weight'] = torch.randn(
        num_rows, 1024, 1, 1, generator=gen) * 0.01
    return state


@pytest.fixture(scope='module')
def authors_state():
    return make_authors_state()


def functional_forward(src, x):
    """The authors' VGG-16 LargeFOV (fc6 dilation 1) from raw tensors."""

    def conv_relu(x, name, dilation=1):
        weight = src[f'backbone.{name}.weight']
        padding = dilation if weight.shape[-1] == 3 else 0
        x = F.conv2d(
            x,
            weight,
            src[f'backbone.{name}.bias'],
            padding=padding,
            dilation=dilation)
        return F.relu(x)

    blocks = [['conv1_1', 'conv1_2'], ['conv2_1', 'conv2_2'],
              ['conv3_1', 'conv3_2', 'conv3_3'],
              ['conv4_1', 'conv4_2', 'conv4_3'],
              ['conv5_1', 'conv5_2', 'conv5_3']]
    for names, stride, dilation in zip(blocks, [2, 2, 2, 1, 1],
                                       [1, 1, 1, 1, 2]):
        for name in names:
            x = conv_relu(x, name, dilation)
        x = F.max_pool2d(x, kernel_size=3, stride=stride, padding=1)
    x = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
    x = conv_relu(x, 'fc6')  # dropout is the identity in eval mode
    return conv_relu(x, 'fc7')


def test_convert_stage1_matches_functional_forward(authors_state):
    ckpt = convert_bana_stage1(authors_state, source='authors.pth')
    assert ckpt['meta']['num_classes'] == 20
    assert ckpt['meta']['converted_from'] == 'authors.pth'
    state = ckpt['state_dict']
    expected = {
        f'backbone.{name}.{p}'
        for name, *_ in LAYERS
        for p in ('weight', 'bias')
    } | {'head.classifier.weight'}
    assert set(state) == expected

    backbone = VGG16LargeFOV().double().eval()
    backbone.load_state_dict(
        {
            k[len('backbone.'):]: v
            for k, v in state.items() if k.startswith('backbone.')
        },
        strict=True)
    classifier = nn.Conv2d(1024, 21, 1, bias=False).double()
    classifier.load_state_dict({'weight': state['head.classifier.weight']},
                               strict=True)

    src64 = {k: v.double() for k, v in authors_state.items()}
    x = torch.randn(1, 3, 65, 65, dtype=torch.float64) * 50
    with torch.no_grad():
        (feat, ) = backbone(x)
        ref = functional_forward(src64, x)
        logits = classifier(feat)
    assert feat.shape == ref.shape == (1, 1024, 9, 9)
    assert ref.abs().max() > 0
    torch.testing.assert_close(feat, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(
        logits,
        F.conv2d(ref, src64['classifier.weight']),
        rtol=1e-10,
        atol=1e-10)


def test_wrappers_prefixes_and_junk_are_handled(authors_state):
    wrapped = {
        'state_dict': {
            f'module.{k}': v
            for k, v in authors_state.items()
        },
        'optimizer': {
            'state': {},
            'param_groups': []
        },
        'epoch': 3,
    }
    for src in (wrapped, {
            'model': authors_state
    }, {
            **authors_state, 'optimizer': {
                'state': {}
            },
            'iteration': 8000
    }):
        state = convert_bana_stage1(src)['state_dict']
        assert torch.equal(state['backbone.conv4_1.weight'],
                           authors_state['backbone.conv4_1.weight'])
        assert torch.equal(state['head.classifier.weight'],
                           authors_state['classifier.weight'])


def test_missing_keys_error(authors_state):
    src = dict(authors_state)
    del src['backbone.fc7.bias'], src['classifier.weight']
    with pytest.raises(CheckpointConversionError) as exc:
        convert_bana_stage1(src)
    msg = str(exc.value)
    assert 'missing keys' in msg
    assert 'backbone.fc7.bias' in msg and 'classifier.weight' in msg


def test_unexpected_keys_error(authors_state):
    src = dict(authors_state)
    src['backbone.conv6.weight'] = torch.zeros(1)
    src['classifier.bias'] = torch.zeros(21)
    with pytest.raises(CheckpointConversionError) as exc:
        convert_bana_stage1(src)
    msg = str(exc.value)
    assert 'unexpected keys' in msg
    assert 'backbone.conv6.weight' in msg and 'classifier.bias' in msg


def test_wrong_shapes_error(authors_state):
    src = dict(authors_state)
    src['backbone.conv3_2.weight'] = torch.zeros(256, 256, 1, 1)
    with pytest.raises(CheckpointConversionError) as exc:
        convert_bana_stage1(src)
    msg = str(exc.value)
    assert 'backbone.conv3_2.weight' in msg
    assert '(256, 256, 1, 1)' in msg and '(256, 256, 3, 3)' in msg

    src = dict(authors_state)
    src['classifier.weight'] = torch.zeros(21, 512, 1, 1)
    with pytest.raises(CheckpointConversionError, match='classifier.weight'):
        convert_bana_stage1(src)


def test_num_classes_check(authors_state):
    assert convert_bana_stage1(authors_state, num_classes=20)
    with pytest.raises(CheckpointConversionError, match='num_classes=20'):
        convert_bana_stage1(authors_state, num_classes=80)


def test_convert_deeplabv1(authors_state):
    ckpt = convert_bana_checkpoint(authors_state, stage='deeplabv1')
    state = ckpt['state_dict']
    assert ckpt['meta']['num_classes'] == 21
    assert not any(k.startswith('head.') for k in state)
    assert torch.equal(state['decode_head.conv_seg.weight'],
                       authors_state['classifier.weight'])
    assert torch.equal(state['backbone.fc6.weight'],
                       authors_state['backbone.fc6.weight'])
    # DeepLab-V1 uses fc6 dilation 12; the weights load unchanged.
    backbone = VGG16LargeFOV(fc6_dilation=12)
    backbone.load_state_dict(
        {
            k[len('backbone.'):]: v
            for k, v in state.items() if k.startswith('backbone.')
        },
        strict=True)
    with pytest.raises(KeyError, match='stage'):
        convert_bana_checkpoint(authors_state, stage='deeplabv3')


def test_cli_end_to_end(tmp_path, authors_state):
    src = str(tmp_path / 'ClsNet.pt')
    torch.save({'state_dict': authors_state, 'optimizer': {}}, src)
    dst = str(tmp_path / 'out' / 'nested' / 'bana_stage1.pth')
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, TOOL, src, dst],
                          capture_output=True,
                          text=True,
                          env=env,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert 'Converted' in proc.stdout and dst in proc.stdout
    assert 'num_classes=20' in proc.stdout
    # Written atomically: only the final file is left behind.
    assert os.listdir(osp.dirname(dst)) == ['bana_stage1.pth']

    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert ckpt['meta']['converted_from'] == src
    assert torch.equal(ckpt['state_dict']['head.classifier.weight'],
                       authors_state['classifier.weight'])

    # The converted file initialises the backbone through mmengine.
    backbone = VGG16LargeFOV(
        init_cfg=dict(type='Pretrained', checkpoint=dst, prefix='backbone.'))
    backbone.init_weights()
    assert torch.equal(backbone.conv5_3.weight,
                       authors_state['backbone.conv5_3.weight'])
    assert torch.equal(backbone.fc7.bias, authors_state['backbone.fc7.bias'])


def _load_tool():
    spec = importlib.util.spec_from_file_location('convert_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reports_errors(tmp_path, authors_state, capsys):
    bad = dict(authors_state)
    del bad['backbone.conv1_1.bias']
    src = str(tmp_path / 'bad.pt')
    torch.save(bad, src)
    dst = str(tmp_path / 'bad_out.pth')
    tool = _load_tool()
    assert tool.main([src, dst]) == 1
    err = capsys.readouterr().err
    assert 'backbone.conv1_1.bias' in err and 'missing' in err
    assert not osp.exists(dst)
    assert os.listdir(tmp_path) == ['bad.pt']

    from bana_mm.utils.checkpoint import CheckpointReadError
    (tmp_path / 'garbage.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(
            CheckpointReadError,
            match='garbage.pt is not a readable checkpoint') as e:
        convert_file(str(tmp_path / 'garbage.pt'), dst)
    assert 'weights_only=False' not in str(e.value)


def test_cli_deeplabv1_in_process(tmp_path, authors_state, capsys):
    src = str(tmp_path / 'deeplab.pt')
    torch.save(authors_state, src)
    dst = str(tmp_path / 'deeplab.pth')
    assert _load_tool().main(['--stage', 'deeplabv1', src, dst]) == 0
    assert 'decode_head: 1' in capsys.readouterr().out
    state = torch.load(dst, weights_only=True)['state_dict']
    assert 'decode_head.conv_seg.weight' in state
