"""tools/run_pipeline.py: the one-command job and its summary.json."""
import json
import math
import os
import os.path as osp

import pytest
import torch

from bana_mm.apis import VOCLayout, parse_stages, run_pipeline
from bana_mm.apis.common import window_means

STAGE2_KEYS = {
    'images', 'seconds_per_image', 'miou', 's_share', 's_accuracy', 'out_dir'
}
STAGE3_KEYS = {
    'iters', 'loss_first', 'loss_last', 'miou_val', 'miou_val_crf',
    'checkpoint', 'seconds'
}
SUMMARY_KEYS = {'iters', 'loss_first', 'loss_last', 'seconds', 'checkpoint'}


def test_window_means_uses_first_and_last_tenth():
    losses = [10.0] * 10 + [5.0] * 80 + [1.0, 3.0] * 5
    assert window_means(losses) == (10.0, 2.0)
    assert window_means([4.0, 2.0]) == (4.0, 2.0)
    with pytest.raises(ValueError):
        window_means([])


def test_parse_stages():
    assert parse_stages('2,1') == [1, 2]
    with pytest.raises(ValueError):
        parse_stages('one')


def test_stage1_writes_summary(synthetic_root, tmp_path):
    work = str(tmp_path / 'work')
    summary = run_pipeline(
        work, synthetic_root, preset='tiny', stages=[1], max_iters=12)
    on_disk = json.load(open(osp.join(work, 'summary.json')))
    assert on_disk == summary
    stage1 = on_disk['stage1']
    assert set(stage1) == SUMMARY_KEYS
    assert stage1['iters'] == 12
    assert math.isfinite(stage1['loss_first'])
    assert math.isfinite(stage1['loss_last'])
    assert stage1['seconds'] > 0
    assert osp.isfile(stage1['checkpoint'])
    # later stages merge into the same file
    from bana_mm.apis.common import update_summary
    merged = update_summary(
        osp.join(work, 'summary.json'), dict(stage2=dict(images=1)))
    assert merged['stage1'] == stage1 and merged['stage2'] == {'images': 1}


def test_cli_runs_all_stages_on_the_default_dataset(tmp_path, capsys):
    from tools import run_pipeline as cli
    work = str(tmp_path / 'demo')
    summary = cli.main(
        ['--work-dir', work, '--max-iters', '6', '--workers', '0'])
    assert osp.isfile(osp.join(work, 'synthetic_data', 'class_names.txt'))
    assert summary['stage1']['iters'] == 6
    stage2 = summary['stage2']
    assert STAGE2_KEYS <= set(stage2)
    with open(
            osp.join(work, 'synthetic_data', 'ImageSets', 'Segmentation',
                     'train.txt')) as f:
        train_ids = [line.strip() for line in f if line.strip()]
    assert stage2['images'] == stage2['written'] == len(train_ids)
    assert len(os.listdir(osp.join(stage2['out_dir'], 'Yret'))) == \
        len(train_ids)
    assert set(stage2['miou']) == {'ycrf', 'yret', 'box', 'grabcut'}
    # percent, as mmseg's IoUMetric reports mIoU and accuracies
    assert 0 < stage2['s_share'] <= 100 and 0 <= stage2['s_accuracy'] <= 100
    assert all(0 <= v <= 100 for v in stage2['miou'].values())
    assert len(os.listdir(stage2['pictures'])) == 4
    with open(osp.join(stage2['out_dir'], 'fingerprint.json')) as f:
        # the tiny preset keeps the authors' stage 2
        assert json.load(f)['labels']['restore_erased_boxes'] is False
    assert stage2['restored_boxes'] == 0
    stage3 = summary['stage3']
    assert set(stage3) == STAGE3_KEYS
    assert stage3['iters'] == 6 and osp.isfile(stage3['checkpoint'])
    assert 0 <= stage3['miou_val'] <= 100
    assert 0 <= stage3['miou_val_crf'] <= 100
    assert 'summary written to' in capsys.readouterr().out


def test_fully_supervised_twin_trains_on_the_ground_truth(
        synthetic_root, tmp_path):
    """``twin=True``: stage 3 again, same config, ground truth as Ycrf and
    Yret of every training image; its figures sit beside stage 3's."""
    from mmengine.registry import init_default_scope

    from bana_mm.apis.stage3 import stage3_config
    from bana_mm.seg.datasets import PseudoLabelVOCDataset
    layout = VOCLayout.inspect(synthetic_root)
    cfg = stage3_config(layout.root, layout.classes, None,
                        str(tmp_path / 'cfg'))
    init_default_scope('mmseg')
    data = dict(cfg.train_dataloader.dataset)
    data.pop('type')
    dataset = PseudoLabelVOCDataset(**data)
    gt = osp.join(layout.root, 'SegmentationClass')
    assert len(dataset) == 16
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert info['uses_gt'] and info['seg_map_path'] == info[
            'ret_map_path'] and info['seg_map_path'].startswith(gt)

    work = str(tmp_path / 'w')
    run_pipeline(work, synthetic_root, stages=[1, 2], max_iters=2, workers=0)
    summary = run_pipeline(
        work, synthetic_root, stages=[3], max_iters=2, twin=True)
    twin = summary['stage3']['fully_supervised']
    assert set(twin) == STAGE3_KEYS
    assert twin['checkpoint'].startswith(osp.join(work, 'stage3_twin'))
    assert twin['checkpoint'] != summary['stage3']['checkpoint']
    assert 0 <= twin['miou_val'] <= 100
    untwinned = run_pipeline(
        str(tmp_path / 'w2'),
        synthetic_root,
        stages=[1, 2, 3],
        max_iters=2,
        workers=0)
    assert 'fully_supervised' not in untwinned['stage3']  # tiny: off


def test_lite0_preset_runs_every_stage(synthetic_root, tmp_path):
    """The ImageNet EfficientNet-Lite0 preset end to end (1 iteration per
    training): its configs build, load the verified weights, train, label
    and evaluate through the Runner."""
    summary = run_pipeline(
        str(tmp_path),
        synthetic_root,
        preset='lite0',
        stages=[1, 2, 3],
        max_iters=1,
        workers=0,
        twin=False)
    assert summary['stage1']['iters'] == 1
    assert summary['stage2']['written'] == 16
    assert 0 <= summary['stage2']['miou']['ycrf'] <= 100
    # the preset's stage-2 option beyond the authors' defaults
    with open(osp.join(summary['stage2']['out_dir'], 'fingerprint.json')) as f:
        assert json.load(f)['labels']['restore_erased_boxes'] is True
    assert summary['stage2']['restored_boxes'] >= 0
    assert summary['stage3']['iters'] == 1
    assert 0 <= summary['stage3']['miou_val'] <= 100
    assert 'fully_supervised' not in summary['stage3']


def test_real_voc_layout_folder(coco128_voc20, tmp_path):
    layout = VOCLayout.inspect(coco128_voc20)
    assert len(layout.classes) == 20 and layout.classes[0] == 'aeroplane'
    summary = run_pipeline(str(tmp_path), coco128_voc20, max_iters=4)
    assert summary['stage1']['iters'] == 4


def test_bad_requests_fail_clearly(tmp_path, synthetic_root):
    with pytest.raises(FileNotFoundError, match='JPEGImages'):
        VOCLayout.inspect(str(tmp_path))
    with pytest.raises(ValueError, match='unknown stage'):
        run_pipeline(str(tmp_path / 'w'), synthetic_root, stages=[1, 4])
    with pytest.raises(FileNotFoundError, match='stage1.checkpoint'):
        run_pipeline(str(tmp_path / 'w2'), synthetic_root, stages=[2])
    with pytest.raises(ValueError, match='preset'):
        run_pipeline(str(tmp_path / 'w'), synthetic_root, preset='huge')


def test_cli_mdh_options_reach_the_mdh_job(monkeypatch, capsys):
    from bana_mm.apis import mdh
    from tools import run_pipeline as cli
    seen = {}
    monkeypatch.setattr(mdh, 'run_mdh_pipeline',
                        lambda *args, **kwargs: seen.update(kwargs) or {})
    base = ['--method', 'mdh', '--work-dir', 'W']
    cli.main(base + ['--grabcut-margin', '0.75', '--grabcut-fill-below', '0'])
    assert seen['grabcut_margin'] == 0.75 and seen['grabcut_fill_below'] == 0
    assert seen['pseudo_masks'] is None  # the preset's
    cli.main(base + ['--grabcut-fill-below', 'off', '--pseudo-masks', 'eq3'])
    assert seen['pseudo_masks'] == 'eq3'
    assert seen['grabcut_margin'] is None
    assert seen['grabcut_fill_below'] == 'off'
    with pytest.raises(SystemExit):
        cli.main(base + ['--grabcut-fill-below', 'most'])
    assert 'share in [0, 1) or off' in capsys.readouterr().err


def test_stage2_builds_the_model_stage1_was_trained_with(
        synthetic_root, tmp_path):
    # a stage-1 override that changes the model's shapes: stage 2 must
    # load the checkpoint into the same model (it used to rebuild the
    # preset's and stop with a shape mismatch)
    options = {
        'model.backbone.width_mult': 0.125,
        'model.head.in_channels': 128
    }
    summary = run_pipeline(
        str(tmp_path),
        synthetic_root,
        stages=[1, 2],
        max_iters=2,
        workers=0,
        cfg_options=options)
    assert summary['stage2']['written'] == summary['stage2']['images'] > 0
    ckpt = torch.load(
        summary['stage1']['checkpoint'],
        map_location='cpu',
        weights_only=False)
    assert ckpt['state_dict']['head.classifier.weight'].shape[1] == 128
