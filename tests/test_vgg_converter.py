"""ImageNet VGG-16 -> VGG16LargeFOV converter (SPEC §1 "Initial weights").

A random state dict with torchvision's vgg16 shapes (torchvision itself is not
installed) is converted; conv1_1 must be function-preserving on Caffe-style
input away from the padding border, later convs copied, fc6/fc7 decimated as
DeepLab-LargeFOV did; the paper configs load the result and refuse the raw
torchvision file with an error naming the converter.
"""
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS

import bana_mm  # noqa: F401  (registers VGG16LargeFOV)
from bana_mm.models.converters.torchvision_vgg import (VGGConversionError,
                                                       convert_vgg16,
                                                       convert_vgg16_file)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools', 'model_converters', 'vgg16_to_largefov.py')
CONV_NAMES = [
    'conv1_1', 'conv1_2', 'conv2_1', 'conv2_2', 'conv3_1', 'conv3_2',
    'conv3_3', 'conv4_1', 'conv4_2', 'conv4_3', 'conv5_1', 'conv5_2', 'conv5_3'
]
CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
TV_IDS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
# torchvision's ImageNet normalisation and the Caffe mean, written out
TV_MEAN, TV_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (104.008, 116.669, 122.675)


def toeplitz(storage: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A (rows, cols) view with W[o, k] = storage[o + k]: torchvision's
    4096-wide fc shapes without 400 MB of memory (torch.save keeps views)."""
    return storage.as_strided((rows, cols), (1, 1))


@pytest.fixture(scope='module')
def tv_state():
    gen = torch.Generator().manual_seed(0)
    state, cin = {}, 3
    for idx, cout in zip(TV_IDS, CHANNELS):
        state[f'features.{idx}.weight'] = torch.randn(
            cout, cin, 3, 3, generator=gen) * (2.0 / (9 * cin))**0.5
        state[f'features.{idx}.bias'] = torch.randn(cout, generator=gen)
        cin = cout
    s6 = torch.randn(4096 + 25088, generator=gen)
    s7 = torch.randn(4096 + 4096, generator=gen)
    state['classifier.0.weight'] = toeplitz(s6, 4096, 25088)
    state['classifier.0.bias'] = torch.randn(4096, generator=gen)
    state['classifier.3.weight'] = toeplitz(s7, 4096, 4096)
    state['classifier.3.bias'] = torch.randn(4096, generator=gen)
    state['classifier.6.weight'] = torch.randn(1000, 4096, generator=gen)
    state['classifier.6.bias'] = torch.randn(1000, generator=gen)
    return dict(state=state, s6=s6, s7=s7)


@pytest.fixture(scope='module')
def converted(tv_state, tmp_path_factory):
    """SRC (torchvision layout) and DST written by the command-line tool."""
    folder = tmp_path_factory.mktemp('vgg')
    src, dst = str(folder / 'vgg16-tv.pth'), str(folder / 'largefov.pth')
    torch.save(tv_state['state'], src)
    assert osp.getsize(src) < 100e6  # the fc views stayed small
    proc = subprocess.run([sys.executable, TOOL, src, dst],
                          capture_output=True,
                          text=True,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert 'torchvision layout' in proc.stdout
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    return dict(src=src, dst=dst, ckpt=ckpt)


def test_conv1_1_is_function_preserving(tv_state, converted):
    state = converted['ckpt']['state_dict']
    w_tv = tv_state['state']['features.0.weight']
    b_tv = tv_state['state']['features.0.bias']
    torch.manual_seed(1)
    img_rgb = torch.randint(0, 256, (2, 3, 23, 31)).float()  # 0-255 RGB
    # torchvision convention: RGB / 255, minus mean, over std
    x_tv = (img_rgb / 255 - torch.tensor(TV_MEAN).view(1, 3, 1, 1)) / \
        torch.tensor(TV_STD).view(1, 3, 1, 1)
    # Caffe convention: BGR, 0-255, minus the Caffe mean, std 1
    x_caffe = img_rgb.flip(1) - torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    ref = F.conv2d(x_tv, w_tv, b_tv, padding=1)
    ours = F.conv2d(
        x_caffe, state['conv1_1.weight'], state['conv1_1.bias'], padding=1)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    rel = (ours[inner] - ref[inner]).abs().max() / ref[inner].abs().max()
    assert rel <= 1e-5
    # on the one-pixel border the zero padding means a different colour in
    # the two conventions: no bias can fold that (why the border is excluded)
    border = (ours - ref).abs().max() / ref.abs().max()
    assert border > 1e-3


def test_later_convs_copied_and_fc_decimated(tv_state, converted):
    state = converted['ckpt']['state_dict']
    tv = tv_state['state']
    for idx, name in zip(TV_IDS[1:], CONV_NAMES[1:]):
        assert torch.equal(state[f'{name}.weight'],
                           tv[f'features.{idx}.weight'])
        assert torch.equal(state[f'{name}.bias'], tv[f'features.{idx}.bias'])
    assert state['fc6.weight'].shape == (1024, 512, 3, 3)
    assert state['fc7.weight'].shape == (1024, 1024, 1, 1)
    assert state['fc6.bias'].shape == state['fc7.bias'].shape == (1024, )
    # fc6[o, c, i, j] = classifier.0.weight[4 o, c * 49 + 7 * 3i + 3j]
    # (every 4th output, 7x7 taps 0, 3, 6) = s6[4 o + 49 c + 21 i + 3 j]
    o = torch.arange(1024).view(-1, 1, 1, 1)
    c = torch.arange(512).view(1, -1, 1, 1)
    i = torch.arange(3).view(1, 1, -1, 1)
    j = torch.arange(3).view(1, 1, 1, -1)
    expected6 = tv_state['s6'][4 * o + 49 * c + 21 * i + 3 * j]
    assert torch.equal(state['fc6.weight'], expected6)
    assert torch.equal(state['fc6.bias'], tv['classifier.0.bias'][0::4])
    # fc7[a, b] = classifier.3.weight[4 a, 4 b] = s7[4 a + 4 b]
    a = torch.arange(1024).view(-1, 1)
    b = torch.arange(1024).view(1, -1)
    expected7 = tv_state['s7'][4 * a + 4 * b]
    assert torch.equal(state['fc7.weight'][..., 0, 0], expected7)
    assert torch.equal(state['fc7.bias'], tv['classifier.3.bias'][0::4])
    meta = converted['ckpt']['meta']
    assert meta['source_layout'] == 'torchvision'
    assert set(
        meta['dropped_keys']) == {'classifier.6.weight', 'classifier.6.bias'}


@pytest.mark.parametrize('config', [
    'bap_vgg16_voc.py', 'gap_vgg16_voc.py', 'deeplabv1_nal_voc.py',
    'deeplabv1_ignore_voc.py'
])
def test_paper_configs_load_converted_and_refuse_torchvision(
        config, converted):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'bana', config))
    init = cfg.model.backbone.init_cfg
    assert init.type == 'Pretrained'
    assert init.checkpoint == cfg.pretrained == \
        'checkpoints/vgg16_largefov.pth'
    backbone_cfg = cfg.model.backbone
    backbone_cfg.init_cfg.checkpoint = converted['dst']
    model = MODELS.build(backbone_cfg)
    model.init_weights()
    for key, value in converted['ckpt']['state_dict'].items():
        assert torch.equal(model.state_dict()[key], value), key

    backbone_cfg.init_cfg.checkpoint = converted['src']
    model = MODELS.build(backbone_cfg)
    with pytest.raises(ValueError) as exc:
        model.init_weights()
    msg = str(exc.value)
    assert 'tools/model_converters/vgg16_to_largefov.py' in msg
    assert converted['src'] in msg and 'torchvision' in msg


def test_caffe_and_own_layouts(tmp_path):
    """The authors' vgg_caffe.pth (bare names, 1024-wide fc, maybe a
    classifier) and a stage-1 checkpoint (backbone.*) are copied."""
    from bana_mm.models.backbones import VGG16LargeFOV
    src = VGG16LargeFOV()
    own = src.state_dict()
    caffe = dict(own)
    caffe['classifier.weight'] = torch.randn(21, 1024, 1, 1)
    out = convert_vgg16(caffe, source='vgg_caffe.pth')
    assert out['meta']['source_layout'] == 'largefov'
    assert out['meta']['dropped_keys'] == ['classifier.weight']
    assert list(out['state_dict']) == list(own)
    for key, value in own.items():
        assert torch.equal(out['state_dict'][key], value)
    stage1 = {
        'meta': {},
        'state_dict': {
            f'backbone.{k}': v
            for k, v in own.items()
        }
    }
    stage1['state_dict']['head.classifier.weight'] = torch.zeros(
        21, 1024, 1, 1)
    path = str(tmp_path / 'stage1.pth')
    torch.save(stage1, path)
    out = convert_vgg16_file(path, str(tmp_path / 'dst.pth'), fc='drop')
    assert not any(k.startswith('fc') for k in out['state_dict'])
    assert torch.equal(out['state_dict']['conv5_3.weight'],
                       own['conv5_3.weight'])


def test_bad_inputs_name_the_problem(tmp_path):
    from bana_mm.models.backbones import VGG16LargeFOV
    own = VGG16LargeFOV(width_mult=0.5).state_dict()
    with pytest.raises(VGGConversionError, match=r"conv1_2.weight.*\(32, "):
        convert_vgg16(own, source='half.pth')
    bn = {
        'features.0.weight': torch.zeros(64, 3, 3, 3),
        'features.1.running_mean': torch.zeros(64)
    }
    with pytest.raises(VGGConversionError, match='vgg16_bn'):
        convert_vgg16(bn)
    with pytest.raises(VGGConversionError, match='first keys'):
        convert_vgg16({'layer1.weight': torch.zeros(1)})
    bad = str(tmp_path / 'not_a_checkpoint.pth')
    with open(bad, 'w') as f:
        f.write('hello')
    proc = subprocess.run([sys.executable, TOOL, bad,
                           str(tmp_path / 'o')],
                          capture_output=True,
                          text=True,
                          cwd=REPO)
    assert proc.returncode == 1 and 'not_a_checkpoint.pth' in proc.stderr
    assert not osp.exists(tmp_path / 'o')
