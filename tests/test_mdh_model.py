"""Mixed-dual-head (MDH §3.3): head routing by gradients, inference = strong
head = plain model, bad ratios, every MDH config builds, a tiny training."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

CONFIGS = sorted(
    glob.glob(osp.join(osp.dirname(__file__), '..', 'configs', 'mdh', '*.py')))


@pytest.fixture(autouse=True)
def mmseg_scope():
    """mmseg as the default scope inside each test only (no leak)."""
    from mmengine.registry import DefaultScope

    import bana_mm.seg  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def _samples(tags, labels):
    out = []
    for tag, lab in zip(tags, labels):
        s = SegDataSample(
            metainfo=dict(
                is_full=tag,
                img_shape=lab.shape,
                pad_shape=lab.shape,
                ori_shape=lab.shape))
        s.gt_sem_seg = PixelData(data=lab[None].long())
        out.append(s)
    return out


def _head(mode, ratio=(7, 1)):
    from bana_mm.seg.mdh import MDHFCNHead
    torch.manual_seed(0)
    # num_convs=0: the head's shared feature is its input, so a sample's
    # input gradient shows exactly which head losses it took part in
    return MDHFCNHead(
        in_channels=4,
        channels=4,
        num_convs=0,
        concat_input=False,
        num_classes=3,
        dropout_ratio=0,
        norm_cfg=dict(type='BN'),
        head_mode=mode,
        mix_ratio=ratio)


def _grads(head, which, tags):
    torch.manual_seed(1)
    x = torch.randn(len(tags), 4, 6, 6, requires_grad=True)
    labels = [torch.randint(0, 3, (6, 6)) for _ in tags]
    head.zero_grad()
    losses = head.loss((x, ), _samples(tags, labels), {})
    total = sum(v for k, v in losses.items() if k.startswith('loss')
                and k.endswith(which)) if which else losses['loss_ce']
    total.backward()
    rows = [] if x.grad is None else \
        [i for i in range(len(tags)) if x.grad[i].abs().sum() > 0]
    return rows, losses


def _params_have_grad(modules):
    return any(p.grad is not None and p.grad.abs().sum() > 0 for m in modules
               for p in m.parameters())


TAGS = [True, False, True, False]


@pytest.mark.parametrize(
    'mode,ratio,strong_rows,weak_rows',
    [
        ('dual', (7, 1), [0, 2], [1, 3]),
        ('mixed', (2, 1), [0, 1, 2], [1, 3]),  # 2 F * 1/2 -> 1 W to strong
        ('mixed', (1, 1), [0, 1, 2, 3], [1, 3]),
    ])
def test_each_head_learns_only_from_its_samples(mode, ratio, strong_rows,
                                                weak_rows):
    head = _head(mode, ratio)
    strong = (head.strong_pre, head.conv_seg)
    weak = (head.weak_pre, head.weak_seg)
    rows, losses = _grads(head, '_strong', TAGS)
    assert rows == strong_rows
    assert _params_have_grad(strong) and not _params_have_grad(weak)
    assert set(losses) >= {
        'loss_ce_strong', 'loss_ce_weak', 'acc_seg_strong', 'acc_seg_weak'
    }
    rows, _ = _grads(head, '_weak', TAGS)
    assert rows == weak_rows
    assert _params_have_grad(weak) and not _params_have_grad(strong)


def test_head_without_samples_gets_zero_gradient():
    head = _head('dual')
    rows, losses = _grads(head, '_weak', [True, True])
    assert rows == [] and losses['loss_ce_weak'].item() == 0.0
    assert all(
        p.grad is not None and (p.grad == 0).all()
        for p in head.weak_seg.parameters())


def test_single_head_sees_everything_and_has_no_weak_head():
    head = _head('single')
    assert head.weak_seg is None and head.weak_pre is None
    rows, _ = _grads(head, None, TAGS)
    assert rows == [0, 1, 2, 3]


def test_mixed_ratio_is_exact_in_expectation():
    head = _head('mixed', (7, 1))
    torch.manual_seed(0)
    tags = [True] * 4 + [False] * 4
    n_weak = [len(head.route(tags)[0]) - 4 for _ in range(4000)]
    assert set(n_weak) == {0, 1}
    assert sum(n_weak) / len(n_weak) == pytest.approx(4 / 7, abs=0.03)


def test_bad_ratio_mode_and_missing_tags():
    with pytest.raises(ValueError, match='mix_ratio = 7:0 has a zero'):
        _head('mixed', (7, 0))
    with pytest.raises(ValueError, match='head_mode must be one of'):
        _head('triple')
    head = _head('mixed')
    x = torch.randn(2, 4, 6, 6)
    samples = _samples([True, False], [torch.zeros(6, 6)] * 2)
    del samples[1].is_full
    with pytest.raises(KeyError, match="'is_full' tag"):
        head.loss((x, ), samples, {})


def _build(name, **head):
    from mmengine.config import Config
    from mmseg.registry import MODELS
    cfg = Config.fromfile(
        osp.join(osp.dirname(__file__), '..', 'configs', 'mdh', name))
    cfg.model.decode_head.update(head)
    return cfg, MODELS.build(cfg.model)


def test_inference_is_the_strong_head_and_exports_to_a_single_head_model():
    from bana_mm.seg.mdh import strong_state_dict
    torch.manual_seed(0)
    _, model = _build('segnet_tiny.py')
    model.init_weights()
    _, plain = _build('segnet_tiny.py', head_mode='single')
    state = strong_state_dict(model.state_dict())
    plain.load_state_dict(state, strict=True)  # no missing/unexpected key
    model.eval(), plain.eval()
    x = torch.rand(1, 3, 64, 80) * 255
    meta = dict(img_shape=(64, 80), ori_shape=(64, 80), pad_shape=(64, 80))
    with torch.no_grad():
        out = model.test_step(
            dict(inputs=[x[0]],
                 data_samples=[SegDataSample(metainfo=meta)]))[0]
        ref = plain.test_step(
            dict(inputs=[x[0]],
                 data_samples=[SegDataSample(metainfo=meta)]))[0]
        # the weak head plays no part at inference
        model.decode_head.weak_seg.weight.add_(1.0)
        again = model.test_step(
            dict(inputs=[x[0]],
                 data_samples=[SegDataSample(metainfo=meta)]))[0]
    assert torch.equal(out.seg_logits.data, ref.seg_logits.data)
    assert torch.equal(out.seg_logits.data, again.seg_logits.data)
    assert out.pred_sem_seg.data.shape == (1, 64, 80)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_every_mdh_config_builds(path):
    cfg, model = _build(osp.basename(path))
    mean = cfg.model.data_preprocessor.mean
    first = next(m for m in model.backbone.modules()
                 if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == len(mean) == (3 if 'segnet' in path
                                              or 'nopriors' in path else 5)
    assert model.decode_head.head_mode == cfg.model.decode_head.head_mode
    assert (model.decode_head.weak_seg is None) == \
        (model.decode_head.head_mode == 'single')
    assert model.decode_head.num_classes == 21
    if 'tiny' in path:  # forward a small 5/3-channel batch
        model.eval()
        with torch.no_grad():
            out = model(torch.rand(1, len(mean), 64, 64), mode='tensor')
        assert out.shape[:2] == (1, 21)


def test_tiny_training_loss_drops():
    from mmengine.optim import OptimWrapper
    torch.manual_seed(0)
    _, model = _build('segnet_tiny.py')
    model.init_weights()
    model.train()
    wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    # bright square = class 1, elsewhere background; two F, two W samples
    inputs, labels = [], []
    for k in range(4):
        img = torch.full((3, 32, 32), 40, dtype=torch.uint8)
        lab = torch.zeros(32, 32, dtype=torch.long)
        img[:, 4 + 2 * k:20 + 2 * k, 8:24] = 220
        lab[4 + 2 * k:20 + 2 * k, 8:24] = 1
        inputs.append(img)
        labels.append(lab)
    data = dict(inputs=inputs, data_samples=_samples(TAGS, labels))
    losses = []
    for _ in range(10):
        log = model.train_step(
            dict(
                inputs=list(data['inputs']),
                data_samples=data['data_samples']), wrapper)
        losses.append(float(log['loss']))
        assert 'decode.loss_ce_weak' in log
    assert losses[-1] < 0.5 * losses[0], losses


def test_pretrained_rgb_backbone_widened_to_5_channels(tmp_path):
    from mmengine.config import Config
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    _, rgb = _build('annnet_tiny_nopriors.py')
    rgb.init_weights()
    ckpt = str(tmp_path / 'rgb.pth')
    torch.save(dict(state_dict=rgb.backbone.state_dict()), ckpt)
    cfg = Config.fromfile(
        osp.join(
            osp.dirname(__file__), '..', 'configs', 'mdh', 'annnet_tiny.py'))
    cfg.model.backbone.init_cfg = dict(
        type='PretrainedExtraChannels', checkpoint=ckpt)
    model = MODELS.build(cfg.model)
    model.init_weights()
    w = model.backbone.conv1.weight
    assert w.shape[1] == 5
    assert torch.equal(w[:, :3], rgb.backbone.conv1.weight)
    assert (w[:, 3:] == 0).all()
    assert torch.equal(model.backbone.layer1[0].conv1.weight,
                       rgb.backbone.layer1[0].conv1.weight)
