"""Stage-3 heads and loss adapter: hand-computed NAL through a head, the
DeepLab-V1/V2 shapes, NAL heads made from stock mmseg heads."""
import math

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import bana_mm.seg  # noqa: F401
from bana_mm.core.nal import confidence_from_cos, cosine_map


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
    head = MODELS.build(
        dict(
            type='DeepLabV1Head',
            in_channels=2,
            num_classes=2,
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
    sigma1, sigma2 = 0.5**7, 1.0  # D = (1, 2) -> 1/2; tie -> 1
    ce1, ce2 = math.log(1 + math.exp(20)), math.log(2)
    l_wce = (sigma1 * ce1 + sigma2 * ce2) / (sigma1 + sigma2)
    assert losses['nal_ce'].item() == pytest.approx(l_ce, abs=1e-6)
    assert losses['nal_wce'].item() == pytest.approx(l_wce, rel=1e-5)
    assert losses['loss_nal'].item() == pytest.approx(
        l_ce + 0.1 * l_wce, rel=1e-5)
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


@pytest.mark.parametrize(
    'mode', ['nal', 'ignore', 'entropy', 'bootstrap', 'ce_crf', 'ce_ret'])
@pytest.mark.parametrize('case', ['empty_S', 'empty_notS', 'all_ignored'])
def test_modes_never_nan(mode, case):
    torch.manual_seed(0)
    phi = torch.randn(2, 2, 3, 4, requires_grad=True)
    ycrf = torch.randint(0, 2, (2, 3, 4))
    yret = {
        'empty_S': 1 - ycrf,
        'empty_notS': ycrf.clone(),
        'all_ignored': torch.full_like(ycrf, 255)
    }[case]
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
    nal = _v1_head(mode='nal', lam=0.0).loss((phi, ), _samples(ycrf, yret), {})
    ign = _v1_head(mode='ignore').loss((phi, ), _samples(ycrf, yret), {})
    assert nal['loss_nal'].item() == pytest.approx(
        ign['loss_nal'].item(), rel=1e-6)


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
    assert loss.current_beta() == pytest.approx(0.5**0.9)
    with pytest.raises(ValueError, match='unknown NoiseAwareLoss mode'):
        MODELS.build(dict(type='NoiseAwareLoss', mode='nope'))


def test_dot_classifier_option():
    head = MODELS.build(
        dict(
            type='DeepLabV1Head',
            in_channels=2,
            num_classes=2,
            classifier=dict(type='dot'),
            loss_decode=dict(type='NoiseAwareLoss')))
    assert head.conv_seg.bias is None
    with torch.no_grad():
        head.conv_seg.weight.copy_(torch.eye(2)[:, :, None, None] * 3)
    phi = torch.tensor([[2., 0.], [0., 1.]])[None, :, None, :]
    logits = head.forward((phi, )).logits
    assert logits[0, :, 0].tolist() == [[6., 0.], [0., 3.]]
    losses = head.loss((phi, ), _samples([[[0, 0]]], [[[0, 1]]]), {})
    # ~S pixel p1: cos = (0, 1) -> sigma = (1/2)^7; H from dot logits (0, 3)
    assert losses['nal_wce'].item() == pytest.approx(
        math.log(1 + math.exp(3)), rel=1e-5)


def test_deeplab_v1_shapes():
    model = MODELS.build(
        dict(
            type='CRFEncoderDecoder',
            data_preprocessor=dict(type='TwoMapSegDataPreProcessor'),
            backbone=dict(
                type='VGG16LargeFOV',
                fc6_dilation=12,
                width_mult=0.125,
                init_cfg=None),
            decode_head=dict(
                type='DeepLabV1Head',
                in_channels=128,
                num_classes=21,
                loss_decode=dict(type='NoiseAwareLoss'))))
    assert model.backbone.fc6.dilation == (12, 12)
    x = torch.randn(2, 3, 65, 81)
    feats = model.extract_feat(x)
    assert feats[0].shape == (2, 128, 9, 11)  # output stride 8
    logits = model.decode_head(feats).logits
    assert logits.shape == (2, 21, 9, 11)
    assert logits.abs().max() <= 20.0 + 1e-4  # tau * cos
    assert model.encode_decode(x, [dict(img_shape=(65, 81))] * 2).shape == \
        (2, 21, 65, 81)


def test_deeplab_v2_shapes_and_names():
    model = MODELS.build(
        dict(
            type='CRFEncoderDecoder',
            data_preprocessor=dict(type='TwoMapSegDataPreProcessor'),
            backbone=dict(
                type='ResNetV1c',
                depth=18,
                out_indices=(3, ),
                dilations=(1, 1, 2, 4),
                strides=(1, 2, 1, 1),
                contract_dilation=True),
            decode_head=dict(
                type='DeepLabV2Head',
                in_channels=512,
                channels=32,
                num_classes=6,
                loss_decode=dict(type='NoiseAwareLoss'))))
    head = model.decode_head
    assert [getattr(head, f'c{i}').dilation[0] for i in range(1, 5)] == \
        [6, 12, 18, 24]
    assert all(getattr(head, f'c{i}').bias is None for i in range(1, 5))
    feats = model.extract_feat(torch.randn(1, 3, 64, 48))
    assert feats[0].shape == (1, 512, 8, 6)  # output stride 8
    out = head(feats)
    assert out.logits.shape == (1, 6, 8, 6)
    assert out.phi.shape == (1, 32, 8, 6)
    assert (out.phi >= 0).all()  # ReLU of the summed branches


@pytest.mark.parametrize('head_cfg', [
    dict(type='NALASPPHead', in_channels=16, channels=8, dilations=(1, 2)),
    dict(
        type='NALDepthwiseSeparableASPPHead',
        in_channels=16,
        channels=8,
        dilations=(1, 2),
        c1_in_channels=4,
        c1_channels=4,
        in_index=1),
])
def test_nal_variants_of_stock_mmseg_heads(head_cfg):
    head = MODELS.build(
        dict(head_cfg, num_classes=3, loss_decode=dict(type='NoiseAwareLoss')))
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


# ------------------------------------------------ (logits, phi) return path
HEAD_CASES = {  # type -> (config, input shapes)
    'DeepLabV1Head': (dict(in_channels=8), [(2, 8, 5, 6)]),
    'DeepLabV2Head': (dict(in_channels=8, channels=6), [(2, 8, 5, 6)]),
    'NALASPPHead': (dict(in_channels=8, channels=6, dilations=(1, 2)),
                    [(2, 8, 5, 6)]),
    'NALFCNHead': (dict(in_channels=8, channels=6, num_convs=1),
                   [(2, 8, 5, 6)]),
    'NALPSPHead': (dict(in_channels=8, channels=6, pool_scales=(1, 2)),
                   [(2, 8, 5, 6)]),
    'NALDepthwiseSeparableASPPHead': (
        dict(in_channels=8, channels=6, dilations=(1, 2), c1_in_channels=4,
             c1_channels=4, in_index=1), [(2, 4, 9, 11), (2, 8, 5, 6)]),
}
# (loss_nal, nal_ce, nal_wce) of the code before the (logits, phi) refactor
# (commit 5584b70, phi kept on the head as ``last_phi``), same seeds.
PRE_REFACTOR = {
    ('DeepLabV1Head', 'cosine', False): (4.103295, 3.994038, 1.092577),
    ('DeepLabV1Head', 'cosine', True): (3.911273, 3.797773, 1.135),
    ('DeepLabV1Head', 'dot', False): (1.207954, 1.098939, 1.09015),
    ('DeepLabV1Head', 'dot', True): (1.207908, 1.09883, 1.090788),
    ('DeepLabV2Head', 'cosine', False): (5.530793, 5.447862, 0.8293103),
    ('DeepLabV2Head', 'cosine', True): (5.405936, 5.320714, 0.8522186),
    ('DeepLabV2Head', 'dot', False): (1.208436, 1.098613, 1.098231),
    ('DeepLabV2Head', 'dot', True): (1.208437, 1.098613, 1.098237),
    ('NALASPPHead', 'cosine', False): (5.992841, 5.905339, 0.8750216),
    ('NALASPPHead', 'cosine', True): (6.007822, 5.91808, 0.8974193),
    ('NALASPPHead', 'dot', False): (1.207842, 1.098775, 1.090665),
    ('NALASPPHead', 'dot', True): (1.207862, 1.09884, 1.090222),
    ('NALFCNHead', 'cosine', False): (5.40327, 5.305625, 0.9764535),
    ('NALFCNHead', 'cosine', True): (5.369167, 5.271899, 0.9726822),
    ('NALFCNHead', 'dot', False): (1.208173, 1.099081, 1.090917),
    ('NALFCNHead', 'dot', True): (1.208205, 1.099102, 1.091032),
    ('NALPSPHead', 'cosine', False): (7.93449, 7.843317, 0.9117296),
    ('NALPSPHead', 'cosine', True): (7.699142, 7.605451, 0.9369108),
    ('NALPSPHead', 'dot', False): (1.206605, 1.09873, 1.078755),
    ('NALPSPHead', 'dot', True): (1.206618, 1.098763, 1.078541),
    ('NALDepthwiseSeparableASPPHead', 'cosine', False):
    (5.071169, 4.939163, 1.320061),
    ('NALDepthwiseSeparableASPPHead', 'cosine', True):
    (5.096786, 4.96482, 1.319661),
    ('NALDepthwiseSeparableASPPHead', 'dot', False):
    (1.208397, 1.098593, 1.098042),
    ('NALDepthwiseSeparableASPPHead', 'dot', True):
    (1.208392, 1.098593, 1.097986),
}


def _seeded_case(name, classifier, align_corners=None):
    cfg, shapes = HEAD_CASES[name]
    cfg = dict(
        cfg,
        type=name,
        num_classes=3,
        classifier=dict(type=classifier),
        loss_decode=dict(type='NoiseAwareLoss'))
    if align_corners is not None:
        cfg['align_corners'] = align_corners
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.eval()  # no dropout, BN on running statistics
    inputs = tuple(torch.randn(s) for s in shapes)
    g = torch.Generator().manual_seed(1)
    ycrf = torch.randint(0, 3, (2, 33, 41), generator=g)
    yret = torch.where(
        torch.rand(2, 33, 41, generator=g) < 0.3, (ycrf + 1) % 3, ycrf)
    return head, inputs, ycrf, yret


@pytest.mark.parametrize('key', sorted(PRE_REFACTOR))
def test_losses_equal_the_pre_refactor_code(key):
    head, inputs, ycrf, yret = _seeded_case(*key)
    losses = head.loss(inputs, _samples(ycrf, yret), {})
    got = tuple(losses[k].item() for k in ('loss_nal', 'nal_ce', 'nal_wce'))
    assert got == pytest.approx(PRE_REFACTOR[key], rel=2e-6)


@pytest.mark.parametrize('name', sorted(HEAD_CASES))
@pytest.mark.parametrize('classifier', ['cosine', 'dot'])
def test_loss_equals_core_nal_on_the_returned_phi(name, classifier):
    """The head's loss = bana_mm.core.nal on the phi its forward returns
    and its W, upsampled with the head's default (align_corners=True)."""
    from bana_mm.core.nal import dot_logits, region_loss, upsample_to
    head, inputs, ycrf, yret = _seeded_case(name, classifier)
    assert head.align_corners is True  # the default (SPEC §2)
    out = head.forward(inputs)
    assert isinstance(out, bana_mm.seg.NALOutput)
    w = head.conv_seg.weight
    cos = cosine_map(out.phi, w)
    logits = 20.0 * cos if classifier == 'cosine' else dot_logits(out.phi, w)
    assert torch.allclose(out.logits, logits, atol=1e-5)
    size = ycrf.shape[-2:]
    ref = region_loss(
        upsample_to(logits, size, align_corners=True),
        ycrf,
        yret,
        'nal',
        cos=upsample_to(cos, size, align_corners=True))
    losses = head.loss_by_feat(out, _samples(ycrf, yret))
    assert losses['loss_nal'].item() == pytest.approx(
        ref['loss'].item(), rel=1e-5)
    assert losses['nal_wce'].item() == pytest.approx(
        ref['loss_wce'].item(), rel=1e-5)


def test_inference_returns_plain_logits_and_no_head_state():
    model = MODELS.build(
        dict(
            type='CRFEncoderDecoder',
            backbone=dict(
                type='VGG16LargeFOV', width_mult=0.125, init_cfg=None),
            decode_head=dict(
                type='DeepLabV1Head',
                in_channels=128,
                num_classes=3,
                loss_decode=dict(type='NoiseAwareLoss')),
            test_cfg=ConfigDict(mode='whole')))
    model.eval()
    x = torch.randn(1, 3, 41, 49)
    with torch.no_grad():
        tensor_out = model(x, mode='tensor')
        enc = model.encode_decode(x, [dict(img_shape=(41, 49))])
        pred = model.predict(x)[0]
    assert type(tensor_out) is torch.Tensor and tensor_out.shape == \
        (1, 3, 6, 7)
    assert type(enc) is torch.Tensor and enc.shape == (1, 3, 41, 49)
    assert pred.seg_logits.data.shape == (3, 41, 49)
    assert not hasattr(model.decode_head, 'last_phi')


def test_every_shipped_head_is_an_explicit_registered_class():
    import inspect

    import bana_mm.seg.heads as heads
    for name in ('NALASPPHead', 'NALDepthwiseSeparableASPPHead', 'NALFCNHead',
                 'NALPSPHead', 'DeepLabV1Head', 'DeepLabV2Head'):
        cls = getattr(heads, name)
        assert MODELS.get(name) is cls
        source = inspect.getsource(cls)
        assert source.startswith('@MODELS.register_module()\nclass ' + name)
        assert issubclass(cls, heads.NoiseAwareHeadMixin)


def test_noise_aware_head_helper_builds_more_heads():
    from mmseg.models.decode_heads import UPerHead

    from bana_mm.seg import noise_aware_head
    cls = noise_aware_head(UPerHead, name='NALUPerHeadForTest', register=False)
    head = cls(
        in_channels=[4, 4],
        in_index=[0, 1],
        channels=6,
        pool_scales=(1, 2),
        num_classes=3,
        loss_decode=dict(type='NoiseAwareLoss'))
    out = head.forward((torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)))
    assert out.logits.shape == (1, 3, 8, 8) and out.phi.shape[1] == 6
    assert 'NALUPerHeadForTest' not in MODELS.module_dict
