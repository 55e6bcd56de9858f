"""Stage 1 end to end: training lowers the loss, checkpoints resume and
test."""
import json
import os.path as osp
import uuid

import numpy as np
import pytest
import torch

TINY = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'bana',
    'bap_vgg16_tiny.py')


def _data_options(root: str) -> list:
    return [
        f'{key}.dataset.data_root={root}/'
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


@pytest.fixture(scope='module')
def trained(synthetic_root, tmp_path_factory):
    """40 iterations of the tiny preset through tools/train.py."""
    from tools import train
    work_dir = str(tmp_path_factory.mktemp('stage1'))
    runner = train.main([
        TINY, '--work-dir', work_dir, '--cfg-options',
        *_data_options(synthetic_root), 'train_cfg.max_iters=60',
        'train_cfg.val_interval=60', 'default_hooks.checkpoint.interval=20',
        'default_hooks.checkpoint.max_keep_ckpts=4', 'randomness.seed=0',
        f'experiment_name=stage1_test_{uuid.uuid4().hex[:8]}'
    ])
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    return work_dir, list(losses)


def test_training_lowers_the_loss(trained):
    _, losses = trained
    assert len(losses) == 60
    assert all(np.isfinite(losses))
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < 0.95 * first, (first, last)


def test_checkpoint_loads_with_weights_only(trained):
    path = osp.join(trained[0], 'iter_60.pth')
    ckpt = torch.load(path, map_location='cpu')  # weights_only=True default
    assert 'head.classifier.weight' in ckpt['state_dict']
    assert ckpt['meta']['iter'] == 60


def test_resume_continues_from_the_checkpoint(trained, synthetic_root):
    trained = trained[0]
    from mmengine.config import Config
    from mmengine.runner import Runner

    from tools import train
    cfg = train.build_config(
        train.parse_args([
            TINY, '--work-dir', trained, '--resume',
            osp.join(trained, 'iter_20.pth'), '--cfg-options',
            *_data_options(synthetic_root), 'train_cfg.max_iters=25',
            'train_cfg.val_interval=100'
        ]))
    assert isinstance(cfg, Config) and cfg.resume
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 25
    saved = torch.load(osp.join(trained, 'iter_25.pth'), map_location='cpu')
    assert saved['meta']['iter'] == 25
    # the optimizer state came back from the checkpoint, not from scratch
    assert saved['optimizer']['state']


def test_tools_test_reports_box_accuracy(trained, synthetic_root, tmp_path):
    import glob
    import pickle

    from tools import test
    trained = trained[0]
    work = str(tmp_path / 'test')
    out = str(tmp_path / 'predictions.pkl')
    metrics = test.main([
        'configs/bana/bap_vgg16_tiny.py',
        osp.join(trained, 'iter_60.pth'), '--work-dir', work, '--out', out,
        '--cfg-options', *_data_options(synthetic_root)
    ])
    # percent, 2 decimals
    assert 0.0 <= metrics['box_cls/accuracy'] <= 100.0
    assert metrics['box_cls/accuracy'] == round(metrics['box_cls/accuracy'], 2)
    # the metrics as mmengine writes them: WORK_DIR/TIMESTAMP/TIMESTAMP.json
    logged = glob.glob(osp.join(work, '*', '*.json'))
    assert len(logged) == 1
    assert json.load(open(logged[0]))['box_cls/accuracy'] == pytest.approx(
        metrics['box_cls/accuracy'])
    # --out: the predictions (mmdet's meaning), one sample a val image
    with open(out, 'rb') as f:
        samples = pickle.load(f)
    with open(
            osp.join(synthetic_root, 'ImageSets', 'Segmentation',
                     'val.txt')) as f:
        assert len(samples) == len([x for x in f if x.strip()])
    pred = samples[0]['pred_instances']
    assert pred['scores'].shape[0] == pred['labels'].shape[0] > 0
    assert 'gt_instances' not in samples[0] and 'feat_map' not in samples[0]


def test_tools_test_out_and_show_dir_need_a_matching_config(
        trained, synthetic_root, tmp_path):
    from tools import test
    ckpt = osp.join(trained[0], 'iter_60.pth')
    with pytest.raises(ValueError, match='pkl'):
        test.main([
            TINY, ckpt, '--work-dir',
            str(tmp_path), '--out',
            str(tmp_path / 'preds')
        ])
    with pytest.raises(ValueError, match='WORK_DIR/TIMESTAMP'):
        test.main([
            TINY, ckpt, '--work-dir',
            str(tmp_path), '--out',
            str(tmp_path / 'metrics.json')
        ])
    with pytest.raises(ValueError, match='visualization hook'):
        test.main([
            TINY, ckpt, '--work-dir',
            str(tmp_path), '--show-dir',
            str(tmp_path / 'show')
        ])


def test_foreign_getattr_is_refused(tmp_path):
    """The allowlisted getattr only resolves HistoryBuffer methods."""
    import pickle

    import bana_mm  # noqa: F401

    class Evil:

        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))

    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        torch.save({'x': Evil()}, f)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
