"""tools/gen_pseudo_labels.py and PseudoLabelHook end to end on the
synthetic dataset: files, resume, failures, sharding over 2 ranks, COCO."""
import hashlib
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import REPO, free_port

CONFIG = osp.join(REPO, 'configs', 'bana', 'bap_vgg16_tiny.py')
TOOL = osp.join(REPO, 'tools', 'gen_pseudo_labels.py')
CLASSES = ('disc', 'triangle', 'ring', 'star', 'blob')
VAL = 'ImageSets/Segmentation/val.txt'
TRAIN = 'ImageSets/Segmentation/train.txt'


def make_checkpoint(path: str) -> str:
    """A stage-1 checkpoint of the tiny config at ``path`` (random weights,
    the format mmengine's CheckpointHook writes)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import bana_mm.det  # noqa: F401
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    model.init_weights()
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=CLASSES))), path)
    return path


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    return make_checkpoint(str(tmp_path_factory.mktemp('ckpt') / 'stage1.pth'))


def _ids(root: str, split: str):
    with open(osp.join(root, split)) as f:
        return [line.strip() for line in f if line.strip()]


def _run(args):
    from tools import gen_pseudo_labels
    return gen_pseudo_labels.main(args)


def _digests(folder: str) -> dict:
    out = {}
    for kind in ('Ycrf', 'Yret'):
        for name in sorted(os.listdir(osp.join(folder, kind))):
            with open(osp.join(folder, kind, name), 'rb') as f:
                out[f'{kind}/{name}'] = hashlib.md5(f.read()).hexdigest()
    return out


@pytest.fixture(scope='module')
def val_run(synthetic_root, checkpoint, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('s2') / 'labels')
    run = _run([
        CONFIG, checkpoint, '--data-root', synthetic_root, '--out-dir', out,
        '--split', VAL, '--workers', '1', '--num-vis', '2'
    ])
    return out, run


def test_writes_both_maps_for_every_image(val_run, synthetic_root):
    from bana_mm.utils.label_io import read_label_png
    out, run = val_run
    ids = _ids(synthetic_root, VAL)
    assert run['written'] == len(ids) and not run['failed']
    for stem in ids:
        ycrf = read_label_png(osp.join(out, 'Ycrf', f'{stem}.png'))
        yret = read_label_png(osp.join(out, 'Yret', f'{stem}.png'))
        image = read_label_png(
            osp.join(synthetic_root, 'SegmentationClass', f'{stem}.png'))
        assert ycrf.shape == yret.shape == image.shape
        assert ycrf.max() <= len(CLASSES) and yret.max() <= len(CLASSES)
    assert sorted(os.listdir(osp.join(out, 'vis'))) == \
        sorted(f'{i}.jpg' for i in ids[:2])
    timings = run['mean_seconds']
    assert all(timings[k] > 0 for k in ('network', 'unary', 'crf'))


def test_labels_stay_inside_the_boxes(val_run, synthetic_root):
    """Ycrf / Yret give class c only inside boxes of class c (eq. 6, 9)."""
    import xml.etree.ElementTree as ET

    from bana_mm.utils.label_io import read_label_png
    out, _ = val_run
    for stem in _ids(synthetic_root, VAL):
        root = ET.parse(
            osp.join(synthetic_root, 'Annotations', f'{stem}.xml')).getroot()
        allowed = np.zeros(
            (int(root.find('size/height').text),
             int(root.find('size/width').text), len(CLASSES) + 1), bool)
        allowed[..., 0] = True
        for obj in root.findall('object'):
            c = CLASSES.index(obj.find('name').text) + 1
            b = [
                int(float(obj.find(f'bndbox/{k}').text))
                for k in ('xmin', 'ymin', 'xmax', 'ymax')
            ]
            allowed[b[1] - 1:b[3], b[0] - 1:b[2], c] = True
        for kind in ('Ycrf', 'Yret'):
            label = read_label_png(osp.join(out, kind, f'{stem}.png'))
            ok = np.take_along_axis(
                allowed, label[..., None].astype(int), axis=2)
            assert ok.all(), (kind, stem)


def test_metrics_json(val_run):
    out, run = val_run
    with open(osp.join(out, 'metrics.json')) as f:
        metrics = json.load(f)
    assert metrics == run['metrics']
    assert set(metrics['miou']) == {'ycrf', 'yret', 'box', 'grabcut'}
    # percent, 2 decimals (mmseg's IoUMetric); the file says so
    assert metrics['units']['miou'].startswith('percent')
    for value in metrics['miou'].values():
        assert 0.0 <= value <= 100.0 and value == round(value, 2)
    assert set(metrics['per_class']['ycrf']) == {'background', *CLASSES}
    assert 0.0 < metrics['s_share'] <= 100.0
    assert 0.0 <= metrics['s_accuracy'] <= 100.0
    assert metrics['evaluated'] == metrics['images'] == 6
    # the Box baseline on these shapes (objects fill ~55% of the box)
    assert 30.0 < metrics['miou']['box'] < 90.0
    with open(osp.join(out, 'run.json')) as f:
        record = json.load(f)
    assert record['options']['labels']['threshold'] == 0.99


def test_rerun_skips_finished_images(val_run, synthetic_root, checkpoint):
    out, _ = val_run
    before = _digests(out)
    run = _run([
        CONFIG, checkpoint, '--data-root', synthetic_root, '--out-dir', out,
        '--split', VAL, '--workers', '0', '--no-eval'
    ])
    assert run['written'] == 0 and run['skipped'] == 6
    assert _digests(out) == before


def test_unreadable_image_is_reported_and_run_goes_on(synthetic_root,
                                                      checkpoint, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(synthetic_root, root)
    ids = _ids(root, VAL)
    bad = ids[2]
    with open(osp.join(root, 'JPEGImages', f'{bad}.jpg'), 'wb') as f:
        f.write(b'not a jpeg')
    out = str(tmp_path / 'labels')
    run = _run([
        CONFIG, checkpoint, '--data-root', root, '--out-dir', out, '--split',
        VAL, '--workers', '0', '--no-grabcut', '--num-vis', '0'
    ])
    assert run['written'] == len(ids) - 1
    assert len(run['failed']) == 1 and bad in run['failed'][0]['image']
    assert not osp.exists(osp.join(out, 'Ycrf', f'{bad}.png'))
    assert run['metrics']['missing'] == [bad]
    assert run['metrics']['evaluated'] == len(ids) - 1


def test_kill_and_resume_gives_identical_files(synthetic_root, checkpoint,
                                               tmp_path):
    args = [
        CONFIG, checkpoint, '--data-root', synthetic_root, '--split', TRAIN,
        '--workers', '0', '--no-eval', '--num-vis', '0'
    ]
    reference = str(tmp_path / 'reference')
    _run(args + ['--out-dir', reference])
    total = len(_ids(synthetic_root, TRAIN))

    out = str(tmp_path / 'killed')
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, TOOL, *args, '--out-dir', out],
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ycrf = osp.join(out, 'Ycrf')
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        # count finished PNGs only: a half-written temporary file is not
        # one, and on a fast or a busy CPU the listing can catch one
        if osp.isdir(ycrf) and sum(
                n.endswith('.png') for n in os.listdir(ycrf)) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [n for n in os.listdir(ycrf) if n.endswith('.png')]
    assert 3 <= len(done) < total, 'the run was not killed half-way'

    run = _run(args + ['--out-dir', out])
    assert run['skipped'] >= len(done) and run['written'] >= 1
    assert run['written'] + run['skipped'] == total
    assert _digests(out) == _digests(reference)
    leftovers = [
        n for k in ('Ycrf', 'Yret') for n in os.listdir(osp.join(out, k))
        if not n.endswith('.png')
    ]
    assert leftovers == []


def test_two_ranks_write_each_image_once(synthetic_root, checkpoint, tmp_path):
    out = str(tmp_path / 'dist')
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    cmd = [
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
        '--master_port',
        str(free_port()), TOOL, CONFIG, checkpoint, '--data-root',
        synthetic_root, '--out-dir', out, '--split', TRAIN, '--workers', '0',
        '--no-grabcut', '--num-vis', '0', '--launcher', 'pytorch'
    ]
    result = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(osp.join(out, 'run.json')) as f:
        run = json.load(f)
    ids = _ids(synthetic_root, TRAIN)
    assert run['world_size'] == 2
    shards = [set(r['written']) for r in run['per_rank']]
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(ids)
    assert sorted(os.listdir(osp.join(out, 'Ycrf'))) == \
        sorted(f'{i}.png' for i in ids)
    assert osp.isfile(osp.join(out, 'metrics.json'))


def test_coco_input_writes_rle_jsons_and_ap(synthetic_root, checkpoint,
                                            tmp_path):
    from mmengine.config import Config
    from pycocotools import mask as mask_utils

    from bana_mm.apis.stage2 import (Stage2Options, build_label_dataset,
                                     load_stage1_model, model_classes,
                                     run_stage2)
    from bana_mm.utils.label_io import read_label_png
    cfg = Config.fromfile(CONFIG)
    cfg.train_dataloader.dataset = dict(
        type='CocoBoxDataset',
        data_root=synthetic_root + '/',
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img=''),
        metainfo=dict(classes=CLASSES),
        pipeline=[])
    model, meta = load_stage1_model(cfg, checkpoint, 'cpu')
    dataset = build_label_dataset(cfg)
    out = str(tmp_path / 'coco')
    run = run_stage2(model, dataset, out,
                     Stage2Options(workers=0, num_vis=0, grabcut=False),
                     model_classes(cfg, meta))
    with open(osp.join(synthetic_root, 'annotations',
                       'instances_val.json')) as f:
        source = json.load(f)
    wanted = {a['id'] for a in source['annotations'] if not a['iscrowd']}
    for kind in ('ycrf', 'yret'):
        with open(osp.join(out, f'instances_{kind}.json')) as f:
            pseudo = json.load(f)
        assert {a['id'] for a in pseudo['annotations']} == wanted
        assert len(pseudo['images']) == len(source['images'])
        ann = pseudo['annotations'][0]
        image = next(i for i in source['images'] if i['id'] == ann['image_id'])
        stem = osp.splitext(osp.basename(image['file_name']))[0]
        label = read_label_png(osp.join(out, kind.capitalize(), f'{stem}.png'))
        mask = mask_utils.decode(ann['segmentation']).astype(bool)
        x, y, w, h = ann['bbox']
        inside = np.zeros_like(mask)
        inside[int(np.ceil(y - 0.5)):int(np.ceil(y + h - 0.5)),
               int(np.ceil(x - 0.5)):int(np.ceil(x + w - 0.5))] = True
        cat = dataset.cat2label[ann['category_id']] + 1
        np.testing.assert_array_equal(mask, inside & (label == cat))
        assert ann['area'] == int(mask.sum())
        ap = run['metrics']['coco_ap'][kind]
        # mmdet's CocoMetric names and units (0-1)
        assert set(ap) == {
            'mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'
        }
        assert 0.0 <= ap['mAP_50'] <= 1.0


def test_hook_labels_after_training(synthetic_root, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(CONFIG)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = synthetic_root + '/'
    cfg.train_dataloader.dataset.ann_file = VAL
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=2, val_interval=100)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = 'hook_test'
    cfg.custom_hooks = [
        dict(
            type='PseudoLabelHook',
            workers=0,
            num_vis=1,
            grabcut=False,
            label_cfg=dict(upsample='features'))
    ]
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = next(
        h for h in runner.hooks if type(h).__name__ == 'PseudoLabelHook')
    out = osp.join(cfg.work_dir, 'pseudo_labels')
    assert hook.last_run['written'] == 6
    assert len(os.listdir(osp.join(out, 'Ycrf'))) == 6
    assert osp.isfile(osp.join(out, 'metrics.json'))
    assert os.listdir(osp.join(out, 'vis')) != []
    # on demand: a rerun skips finished images and restores the train mode
    runner.model.train()
    again = hook.generate(runner)
    assert again['skipped'] == 6 and again['written'] == 0
    assert runner.model.training
