"""Stage-3 heads and loss adapter: hand-computed NAL through a head, the
DeepLab-V1/V2 shapes, NAL heads made from stock mmseg heads."""
import math

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

import bana_mm.seg  # noqa: F401
from bana_mm.core.nal import confidence_from_cos, cosine_map
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _samples(ycrf, yret):
    out = []
    for crf, ret in zip(ycrf, yret):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.as_tensor(crf)[None].long())
        s.gt_ret_seg = PixelData(data=torch.as_tensor(ret)[None].long())
        out.append(s)
    return out


def _v1_head(**loss):
    head = MODELS.build(dict(
        type='DeepLabV1Head', in_channels=2, num_classes=2,
        loss_decode=dict(type='NoiseAwareLoss', **loss)))
    with torch.no_grad():
        head.conv_seg.weight.copy_(torch.eye(2)[:, :, None, None])
    return head


def test_nal_through_head_by_hand():
    # pixels: phi = (1,0), (0,1), (1,1); W_0 = (1,0), W_1 = (0,1)
    phi = torch.tensor([[1., 0., 1.], [0., 1., 1.]])[None, :, None, :]
    ycrf, yret = [[[0, 0, 1]]], [[[0, 1, 0]]]  # S = {p0}, ~S = {p1, p2}
    head = _v1_head(mode='nal', lam=0.1, gamma=7.0)
    losses = head.loss((phi, ), _samples(ycrf, yret), {})
    l_ce = math.log(1 + math.exp(-20))
    sigma1, sigma2 = 0.5 ** 7, 1.0  # D = (1, 2) -> 1/2; tie -> 1
    ce1, ce2 = math.log(1 + math.exp(20)), math.log(2)
    l_wce = (sigma1 * ce1 + sigma2 * ce2) / (sigma1 + sigma2)
    assert losses['nal_ce'].item() == pytest.approx(l_ce, abs=1e-6)
    assert losses['nal_wce'].item() == pytest.approx(l_wce, rel=1e-5)
    assert losses['loss_nal'].item() == pytest.approx(l_ce + 0.1 * l_wce,
                                                      rel=1e-5)
    sigma = head.loss_decode.last_sigma[0, 0]
    assert sigma.tolist() == pytest.approx([0.0, sigma1, 1.0])
    # mmengine sums only keys containing 'loss': the parts are not counted
    total, log_vars = BaseModel.parse_losses(None, losses)
    assert total.item() == pytest.approx(losses['loss_nal'].item())
    assert set(k for k in log_vars if 'loss' in k) == {'loss', 'loss_nal'}


def test_large_gamma_keeps_only_argmax_pixels():
    phi = torch.tensor([[1., 0., 1.], [0., 1., 1.]])[None, :, None, :]
    head = _v1_head(mode='nal', gamma=200.0)
    losses = head.loss((phi, ), _samples([[[0, 0, 1]]], [[[0, 1, 0]]]), {})
    # sigma(p1) = 2^-200 ~ 0, so L_wce -> CE of the tie pixel p2 = log 2
    assert losses['nal_wce'].item() == pytest.approx(math.log(2), rel=1e-6)


@pytest.mark.parametrize('mode', ['nal', 'ignore', 'entropy', 'bootstrap',
                                  'ce_crf', 'ce_ret'])
@pytest.mark.parametrize('case', ['empty_S', 'empty_notS', 'all_ignored'])
def test_modes_never_nan(mode, case):
    torch.manual_seed(0)
    phi = torch.randn(2, 2, 3, 4, requires_grad=True)
    ycrf = torch.randint(0, 2, (2, 3, 4))
    yret = {'empty_S': 1 - ycrf, 'empty_notS': ycrf.clone(),
            'all_ignored': torch.full_like(ycrf, 255)}[case]
    if case == 'all_ignored':
        ycrf = yret.clone()
    head = _v1_head(mode=mode, max_iters=10)
    losses = head.loss((phi, ), _samples(ycrf, yret), {})
    total = losses['loss_nal']
    assert torch.isfinite(total)
    total.backward()
    assert torch.isfinite(phi.grad).all()


def test_lambda_zero_equals_ignore():
    torch.manual_seed(1)
    phi = torch.randn(2, 2, 5, 5)
    ycrf = torch.randint(0, 2, (2, 5, 5))
    yret = torch.where(torch.rand(2, 5, 5) < 0.3, 1 - ycrf, ycrf)
    nal = _v1_head(mode='nal', lam=0.0).loss((phi, ), _samples(ycrf, yret),
                                             {})
    ign = _v1_head(mode='ignore').loss((phi, ), _samples(ycrf, yret), {})
    assert nal['loss_nal'].item() == pytest.approx(ign['loss_nal'].item(),
                                                   rel=1e-6)


@pytest.mark.parametrize('detach', [False, True])
def test_gradients_and_detached_sigma(detach):
    torch.manual_seed(2)
    phi = torch.randn(1, 2, 4, 4, requires_grad=True)
    ycrf = torch.randint(0, 2, (1, 4, 4))
    yret = torch.where(torch.rand(1, 4, 4) < 0.5, 1 - ycrf, ycrf)
    yret[0, 0, 0] = 255  # ignored by Yret only -> in ~S
    ycrf[0, 3, 3] = 255  # ignored by Ycrf -> in no region
    head = _v1_head(mode='nal', detach_sigma=detach)
    head.loss((phi, ), _samples(ycrf, yret), {})['loss_nal'].backward()
    grad = phi.grad.clone()
    assert grad[0, :, 3, 3].abs().sum() == 0  # unlabelled pixel
    assert grad.abs().sum() > 0 and head.conv_seg.weight.grad is not None
    # reference: weighted CE with a constant sigma, i.e. the detached loss
    phi2 = phi.detach().clone().requires_grad_(True)
    w = head.conv_seg.weight.detach()
    cos = cosine_map(phi2, w)
    sigma = confidence_from_cos(cos, ycrf, 7.0).detach()
    ce = torch.nn.functional.cross_entropy(
        20 * cos, torch.where(ycrf == 255, 0, ycrf), reduction='none')
    same = (ycrf == yret) & (ycrf != 255)
    diff = (ycrf != yret) & (ycrf != 255)
    ref = ce[same].mean() + 0.1 * (sigma * ce)[diff].sum() / sigma[diff].sum()
    ref.backward()
    if detach:
        assert torch.allclose(grad, phi2.grad, atol=1e-6)
    else:  # sigma is differentiable: the gradient differs on ~S
        assert not torch.allclose(grad, phi2.grad, atol=1e-6)


def test_bootstrap_beta_follows_message_hub():
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('test_seg_heads_bootstrap')
    hub.update_info('iter', 5)
    hub.update_info('max_iters', 10)
    loss = MODELS.build(dict(type='NoiseAwareLoss', mode='bootstrap'))
    assert loss.current_beta() == pytest.approx(0.5 ** 0.9)
    with pytest.raises(ValueError, match='unknown NoiseAwareLoss mode'):
        MODELS.build(dict(type='NoiseAwareLoss', mode='nope'))


def test_dot_classifier_option():
    head = MODELS.build(dict(type='DeepLabV1Head', in_channels=2,
                             num_classes=2, classifier=dict(type='dot'),
                             loss_decode=dict(type='NoiseAwareLoss')))
    assert head.conv_seg.bias is None
    with torch.no_grad():
        head.conv_seg.weight.copy_(torch.eye(2)[:, :, None, None] * 3)
    phi = torch.tensor([[2., 0.], [0., 1.]])[None, :, None, :]
    assert head.forward((phi, ))[0, :, 0].tolist() == [[6., 0.], [0., 3.]]
    losses = head.loss((phi, ), _samples([[[0, 0]]], [[[0, 1]]]), {})
    # ~S pixel p1: cos = (0, 1) -> sigma = (1/2)^7; H from dot logits (0, 3)
    assert losses['nal_wce'].item() == pytest.approx(
        math.log(1 + math.exp(3)), rel=1e-5)


def test_deeplab_v1_shapes():
    model = MODELS.build(dict(
        type='CRFEncoderDecoder',
        data_preprocessor=dict(type='TwoMapSegDataPreProcessor'),
        backbone=dict(type='VGG16LargeFOV', fc6_dilation=12, width_mult=0.125,
                      init_cfg=None),
        decode_head=dict(type='DeepLabV1Head', in_channels=128,
                         num_classes=21,
                         loss_decode=dict(type='NoiseAwareLoss'))))
    assert model.backbone.fc6.dilation == (12, 12)
    x = torch.randn(2, 3, 65, 81)
    feats = model.extract_feat(x)
    assert feats[0].shape == (2, 128, 9, 11)  # output stride 8
    logits = model.decode_head(feats)
    assert logits.shape == (2, 21, 9, 11)
    assert logits.abs().max() <= 20.0 + 1e-4  # tau * cos
    assert model.encode_decode(x, [dict(img_shape=(65, 81))] * 2).shape == \
        (2, 21, 65, 81)


def test_deeplab_v2_shapes_and_names():
    model = MODELS.build(dict(
        type='CRFEncoderDecoder',
        data_preprocessor=dict(type='TwoMapSegDataPreProcessor'),
        backbone=dict(type='ResNetV1c', depth=18, out_indices=(3, ),
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                      contract_dilation=True),
        decode_head=dict(type='DeepLabV2Head', in_channels=512, channels=32,
                         num_classes=6, loss_decode=dict(
                             type='NoiseAwareLoss'))))
    head = model.decode_head
    assert [getattr(head, f'c{i}').dilation[0] for i in range(1, 5)] == \
        [6, 12, 18, 24]
    assert all(getattr(head, f'c{i}').bias is None for i in range(1, 5))
    feats = model.extract_feat(torch.randn(1, 3, 64, 48))
    assert feats[0].shape == (1, 512, 8, 6)  # output stride 8
    assert head(feats).shape == (1, 6, 8, 6)
    assert head.last_phi.shape == (1, 32, 8, 6)
    assert (head.last_phi >= 0).all()  # ReLU of the summed branches


@pytest.mark.parametrize('head_cfg', [
    dict(type='NALASPPHead', in_channels=16, channels=8, dilations=(1, 2)),
    dict(type='NALDepthwiseSeparableASPPHead', in_channels=16, channels=8,
         dilations=(1, 2), c1_in_channels=4, c1_channels=4, in_index=1),
])
def test_nal_variants_of_stock_mmseg_heads(head_cfg):
    head = MODELS.build(dict(head_cfg, num_classes=3,
                             loss_decode=dict(type='NoiseAwareLoss')))
    assert head.conv_seg.bias is None and head.classifier_type == 'cosine'
    inputs = (torch.randn(2, 4, 16, 16), torch.randn(2, 16, 8, 8))
    if 'c1_in_channels' not in head_cfg:
        inputs = (inputs[1], )
    ycrf = torch.randint(0, 3, (2, 32, 32))
    yret = torch.where(torch.rand(2, 32, 32) < 0.3, (ycrf + 1) % 3, ycrf)
    losses = head.loss(inputs, _samples(ycrf, yret), {})
    assert torch.isfinite(losses['loss_nal']) and losses['nal_wce'] > 0
    losses['loss_nal'].backward()
    assert head.conv_seg.weight.grad.abs().sum() > 0


def test_missing_yret_names_the_image():
    head = _v1_head()
    s = SegDataSample(metainfo=dict(img_path='x/abc.jpg'))
    s.gt_sem_seg = PixelData(data=torch.zeros(1, 1, 2).long())
    with pytest.raises(KeyError, match='abc.jpg'):
        head.loss((torch.randn(1, 2, 1, 2), ), [s], {})
