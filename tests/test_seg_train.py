"""Stage-3 training end to end: a loss that really drops, run_stage3 on the
synthetic data (checkpoint, confidence maps, mIoU with/without CRF), the CRF
post-processing, and the docs' DeepLab-V3+ config."""
import copy
import glob
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS
from PIL import Image

import bana_mm.seg  # noqa: F401
from bana_mm.apis.stage3 import run_stage3, stage3_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs', 'bana')
CLASSES = ('disc', 'triangle', 'ring', 'star', 'blob')


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


@pytest.fixture(scope='module')
def pseudo_labels(synthetic_root, tmp_path_factory):
    """Ycrf = ground truth, Yret = ground truth with a wrong background
    square, written as the stage-2 tool would (L-mode PNGs)."""
    out = str(tmp_path_factory.mktemp('pseudo_labels'))
    rng = np.random.default_rng(0)
    ids = open(osp.join(synthetic_root,
                        'ImageSets/Segmentation/train.txt')).read().split()
    for sub in ('Ycrf', 'Yret'):
        os.makedirs(osp.join(out, sub))
    for img_id in ids:
        gt = np.array(
            Image.open(
                osp.join(synthetic_root, 'SegmentationClass',
                         img_id + '.png')))
        ret = gt.copy()
        h, w = gt.shape
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        ret[y:y + h // 3, x:x + w // 3] = 0
        Image.fromarray(gt, 'L').save(osp.join(out, 'Ycrf', img_id + '.png'))
        Image.fromarray(ret, 'L').save(osp.join(out, 'Yret', img_id + '.png'))
    return out


def _tiny_cfg(root, labels, work_dir, **kw):
    cfg = stage3_config(root, CLASSES, labels, work_dir, 'tiny', **kw)
    return cfg


def test_tiny_model_loss_drops_on_a_fixed_batch(synthetic_root, pseudo_labels,
                                                tmp_path):
    torch.manual_seed(0)
    cfg = _tiny_cfg(synthetic_root, pseudo_labels, str(tmp_path))
    model = MODELS.build(cfg.model)
    model.init_weights()
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.pipeline[2] = dict(type='Resize', scale=(96, 96), keep_ratio=True)
    ds_cfg.pipeline[3].crop_size = (96, 96)
    ds = DATASETS.build(ds_cfg)
    batch = pseudo_collate([ds[i] for i in range(2)])
    optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(15):
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        loss = model.loss(data['inputs'], data['data_samples'])
        total = sum(v for k, v in loss.items() if 'loss' in k)
        optim.zero_grad()
        total.backward()
        optim.step()
        losses.append(total.item())
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses


@pytest.fixture(scope='module')
def stage3_run(synthetic_root, pseudo_labels, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('stage3'))
    out = run_stage3(
        synthetic_root,
        CLASSES,
        pseudo_labels,
        work,
        preset='tiny',
        max_iters=6,
        cfg_options={'train_dataloader.batch_size': 2})
    return work, out


def test_run_stage3_on_synthetic(synthetic_root, pseudo_labels, stage3_run,
                                 tmp_path):
    work, out = stage3_run
    assert set(out) == {
        'iters', 'loss_first', 'loss_last', 'miou_val', 'miou_val_crf',
        'checkpoint', 'seconds'
    }
    assert out['iters'] == 6 and osp.isfile(out['checkpoint'])
    assert np.isfinite(out['loss_first']) and np.isfinite(out['loss_last'])
    for key in ('miou_val', 'miou_val_crf'):  # percent, as mmseg reports
        assert 0.0 <= out[key] <= 100.0
    # ConfidenceMapHook -> runner.visualizer -> LocalVisBackend files
    maps = sorted(
        glob.glob(
            osp.join(work, '*', 'vis_data', 'vis_image', 'confidence_*.png')))
    assert [osp.basename(m) for m in maps] == [
        'confidence_syn_000000_6.png', 'confidence_syn_000001_6.png'
    ]
    panel = np.array(Image.open(maps[0]))
    assert panel.ndim == 3 and panel.shape[1] % 5 == 0  # five panels
    # the checkpoint loads through tools/test.py (torch >= 2.6 pickles)
    from tools.test import main as test_main
    cfg_path = osp.join(work, 'cfg.py')
    cfg = _tiny_cfg(synthetic_root, pseudo_labels, str(tmp_path / 't'))
    cfg.dump(cfg_path)
    metrics = test_main([
        cfg_path, out['checkpoint'], '--cfg-options',
        'model.test_cfg.crf.enabled=True'
    ])
    assert metrics['mIoU'] == pytest.approx(out['miou_val_crf'], abs=0.1)


def test_crf_postprocess_snaps_to_image_edges(tmp_path):
    from bana_mm.seg.segmentors import crf_predict, crf_settings
    h, w = 40, 60
    image = np.zeros((h, w, 3), np.uint8)
    image[:, 30:] = 255  # the real edge is at x = 30
    path = str(tmp_path / 'im.png')
    Image.fromarray(image).save(path)
    logits = torch.zeros(2, h, w)
    logits[0, :, :22] = 1.0  # a weak prediction with its edge shifted
    logits[1, :, 22:] = 1.0  # to x = 22
    plain = logits.argmax(0)
    crf = crf_predict(logits, path, crf_settings(dict(enabled=True)))[0]
    truth = torch.zeros(h, w, dtype=torch.long)
    truth[:, 30:] = 1
    assert (plain == truth).float().mean() < 0.9
    assert (crf == truth).float().mean() > 0.97
    assert crf_settings(dict(enabled=False)) is None
    with pytest.raises(ValueError, match='im.png'):
        crf_predict(torch.zeros(2, 10, 10), path, crf_settings({}))


def test_docs_deeplabv3plus_nal_config_builds_and_trains_a_step():
    cfg = Config.fromfile(osp.join(CONFIGS, 'deeplabv3plus_r50-d8_nal_voc.py'))
    assert cfg.model.decode_head.type == 'NALDepthwiseSeparableASPPHead'
    mcfg = copy.deepcopy(cfg.model)
    mcfg.pretrained = None
    # CPU: BN instead of SyncBN, ResNet-18 widths to keep the test fast
    bn = dict(type='BN', requires_grad=True)
    mcfg.backbone.update(depth=18, norm_cfg=bn)
    mcfg.decode_head.update(
        in_channels=512,
        c1_in_channels=64,
        channels=32,
        c1_channels=8,
        norm_cfg=bn)
    model = MODELS.build(mcfg)
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(2):
        s = SegDataSample(
            metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64)))
        crf = torch.randint(0, 21, (1, 64, 64))
        s.gt_sem_seg = PixelData(data=crf)
        s.gt_ret_seg = PixelData(
            data=torch.where(torch.rand(1, 64, 64) < 0.2, (crf + 1) % 21, crf))
        samples.append(s)
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    assert set(k for k in losses if 'loss' in k) == {'decode.loss_nal'}
    assert torch.isfinite(losses['decode.loss_nal'])


def test_multiscale_flip_tta_with_crf(synthetic_root, pseudo_labels,
                                      stage3_run, tmp_path, monkeypatch):
    """mmseg's TestTimeAug (2 scales x flip) merged by CRFSegTTAModel: the
    CRF runs once, on the mean logits of the four views."""
    from bana_mm.seg import segmentors
    cfg = _tiny_cfg(synthetic_root, pseudo_labels, str(tmp_path))
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    tta = copy.deepcopy(cfg.tta_pipeline)
    tta[1].transforms[0] = [
        dict(type='Resize', scale_factor=r, keep_ratio=True)
        for r in (0.75, 1.25)
    ]
    ds_cfg.pipeline = tta
    data = pseudo_collate([DATASETS.build(ds_cfg)[0]])
    assert len(data['inputs']) == 4  # 2 scales x 2 flips
    calls = []
    real = segmentors.crf_predict

    def spy(logits, img_path, settings):
        out = real(logits, img_path, settings)
        calls.append((logits, img_path, out))
        return out

    monkeypatch.setattr(segmentors, 'crf_predict', spy)
    model = MODELS.build(
        dict(
            type='CRFSegTTAModel',
            module=cfg.model,
            crf=dict(enabled=True, iterations=5)))
    model.module.load_state_dict(
        torch.load(stage3_run[1]['checkpoint'])['state_dict'])
    model.eval()
    with torch.no_grad():
        pred = model.test_step(copy.deepcopy(data))[0]
        views = [
            model.module.test_step(dict(inputs=x, data_samples=s))[0]
            for x, s in zip(data['inputs'], data['data_samples'])
        ]
    assert len(calls) == 1  # the inner model's CRF stays off
    logits, img_path, out = calls[0]
    mean = torch.stack([v.seg_logits.data for v in views]).mean(0)
    assert torch.allclose(logits, mean, atol=1e-5)
    assert img_path.endswith('.jpg')
    assert torch.equal(pred.pred_sem_seg.data, out)
    assert out.shape == (1, ) + tuple(pred.gt_sem_seg.data.shape[-2:])


def test_tools_test_tta_flag(synthetic_root, pseudo_labels, stage3_run,
                             tmp_path, monkeypatch):
    """--tta swaps in the config's tta_pipeline / tta_model; with the
    model's CRF enabled, the CRF moves to the merged views (runs once)."""
    from mmengine.runner import Runner

    from tools.test import main as test_main
    _, out = stage3_run
    cfg = _tiny_cfg(synthetic_root, pseudo_labels, str(tmp_path / 't'))
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    built = []
    original = Runner.from_cfg.__func__

    def spy(cls, config):
        built.append(config)
        return original(cls, config)

    monkeypatch.setattr(Runner, 'from_cfg', classmethod(spy))
    metrics = test_main([
        cfg_path, out['checkpoint'], '--tta', '--cfg-options',
        'model.test_cfg.crf.enabled=True'
    ])
    model = built[-1].model
    assert model.type == 'CRFSegTTAModel' and model.crf['enabled']
    assert model.module.test_cfg.crf.enabled is False
    assert built[-1].test_dataloader.dataset.pipeline == cfg.tta_pipeline
    assert 0.0 <= metrics['mIoU'] <= 100.0
    cfg.pop('tta_model')
    cfg.dump(cfg_path)
    with pytest.raises(ValueError, match='tta_model'):
        test_main([cfg_path, out['checkpoint'], '--tta'])


def test_tools_test_out_dir_and_show_dir(synthetic_root, pseudo_labels,
                                         stage3_run, tmp_path):
    """--out DIR: IoUMetric writes one label PNG a val image (mmseg's
    meaning); --show-dir: SegVisualizationHook draws every val image under
    DIR/vis_data/vis_image (the visualizer's save_dir, as mmseg); a .pkl
    --out holds the predictions without logits or ground truth."""
    import pickle

    from tools.test import main as test_main
    _, out = stage3_run
    cfg = _tiny_cfg(synthetic_root, pseudo_labels, str(tmp_path / 't'))
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    preds, show = str(tmp_path / 'preds'), str(tmp_path / 'show')
    test_main([
        cfg_path, out['checkpoint'], '--no-crf', '--out', preds, '--show-dir',
        show
    ])
    val_ids = open(
        osp.join(synthetic_root, 'ImageSets/Segmentation/'
                 'val.txt')).read().split()
    assert sorted(os.listdir(preds)) == sorted(i + '.png' for i in val_ids)
    label = np.array(Image.open(osp.join(preds, val_ids[0] + '.png')))
    gt = np.array(
        Image.open(
            osp.join(synthetic_root, 'SegmentationClass',
                     val_ids[0] + '.png')))
    assert label.shape == gt.shape and label.max() <= len(CLASSES)
    drawn = glob.glob(osp.join(show, 'vis_data', 'vis_image', 'test_*.png'))
    assert len(drawn) == len(val_ids)
    pkl = str(tmp_path / 'preds.pkl')
    test_main([cfg_path, out['checkpoint'], '--no-crf', '--out', pkl])
    with open(pkl, 'rb') as f:
        samples = pickle.load(f)
    assert len(samples) == len(val_ids)
    assert tuple(samples[0]['pred_sem_seg']['data'].shape[-2:]) in {
        np.array(
            Image.open(
                osp.join(synthetic_root, 'SegmentationClass',
                         i + '.png'))).shape
        for i in val_ids
    }
    assert 'seg_logits' not in samples[0] and 'gt_sem_seg' not in samples[0]


def _hook_runner(cfg, tmp_path):
    """What ConfidenceMapHook reads from a runner: model, training set and
    a visualizer with the local backend."""
    from types import SimpleNamespace

    from mmengine.visualization import Visualizer
    model = MODELS.build(cfg.model)
    model.init_weights()
    vis = Visualizer.get_instance(
        f'confidence_hook_{tmp_path.name}',
        save_dir=str(tmp_path / 'vis'),
        vis_backends=[dict(type='LocalVisBackend')])
    return SimpleNamespace(
        model=model,
        visualizer=vis,
        train_dataloader=SimpleNamespace(
            dataset=DATASETS.build(cfg.train_dataloader.dataset)))


def test_confidence_map_hook_on_rank_0_only_through_the_visualizer(
        synthetic_root, pseudo_labels, tmp_path, monkeypatch):
    from bana_mm.core.nal import confidence_from_cos, cosine_map, upsample_to
    from bana_mm.seg import ConfidenceMapHook, hooks
    from bana_mm.visualization import heatmap
    cfg = _tiny_cfg(synthetic_root, pseudo_labels, str(tmp_path / 'w'))
    runner = _hook_runner(cfg, tmp_path)
    hook = ConfidenceMapHook(interval=1, image_ids=['syn_000001'])
    # a non-main rank computes and writes nothing
    monkeypatch.setattr(hooks, 'is_main_process', lambda: False)
    assert hook.save_maps(runner, 3) == []
    vis_dir = tmp_path / 'vis' / 'vis_data' / 'vis_image'
    assert not (tmp_path / 'vis').exists()
    monkeypatch.setattr(hooks, 'is_main_process', lambda: True)
    assert hook.save_maps(runner, 3) == ['confidence_syn_000001']
    panel = np.array(Image.open(vis_dir / 'confidence_syn_000001_3.png'))
    # the sigma panel is sigma of phi returned by the head's forward
    model, head = runner.model, runner.model.decode_head
    info = [
        runner.train_dataloader.dataset.get_data_info(i)
        for i in range(len(runner.train_dataloader.dataset))
    ]
    info = [i for i in info if i['img_path'].endswith('syn_000001.jpg')][0]
    packed = hook._pipeline(dict(info))
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(
                inputs=[packed['inputs']],
                data_samples=[packed['data_samples']]), False)
        out = head(model.extract_feat(data['inputs']))
    ycrf = packed['data_samples'].gt_sem_seg.data
    cos = upsample_to(
        cosine_map(out.phi, head.conv_seg.weight),
        ycrf.shape[-2:],
        align_corners=head.align_corners)
    sigma = confidence_from_cos(cos, ycrf, 7.0)[0].detach().numpy()
    w = ycrf.shape[-1]
    assert panel.shape == (ycrf.shape[-2], 5 * w, 3)
    assert np.array_equal(panel[:, 3 * w:4 * w], heatmap(sigma))
    assert not hasattr(head, 'last_phi')
