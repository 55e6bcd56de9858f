"""tools/benchmarks/step_probe.py and the set-up of authors_step.py (the
training-step benchmark against the authors' code; issue 21)."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PROBE = osp.join(REPO, 'tools', 'benchmarks', 'step_probe.py')
sys.path.insert(0, osp.join(REPO, 'tools', 'benchmarks'))

import authors_step  # noqa: E402

#: a training loop that sleeps 50 ms per step and would run past the probe
TRAIN = '''
import os, sys, time
import torch
from torch.utils.data import DataLoader
import helper  # a module beside the script: the script's folder is on path
model = torch.nn.Linear(4, 2).cuda() if '--cuda' in sys.argv else \\
    torch.nn.Linear(4, 2)
if '--weights' in sys.argv:
    model.load_state_dict(torch.load('weights/imagenet.pth'), strict=False)
    torch.save({'x': torch.ones(1)}, 'other.pth')
    assert torch.load('other.pth')['x'].item() == 1  # others load as usual
loader = DataLoader(list(range(8)), batch_size=2, num_workers=3,
                    pin_memory=True)
with open('loader.txt', 'w') as f:
    f.write(f'{loader.num_workers} {loader.pin_memory}')
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(1, 21):
    x = torch.randn(8, 4)
    if '--cuda' in sys.argv:
        x = x.cuda()
    loss = model(x).square().mean()
    opt.zero_grad()
    loss.backward()
    time.sleep(0.05)
    opt.step()
    with open('last_step.txt', 'w') as f:
        f.write(str(step))
'''


@pytest.fixture
def script(tmp_path):
    (tmp_path / 'train.py').write_text(TRAIN)
    (tmp_path / 'helper.py').write_text('')
    return tmp_path


def probe(folder, *options, script_args=()):
    out = folder / 'times.json'
    proc = subprocess.run([
        sys.executable, PROBE, '--out',
        str(out), *options, '--',
        str(folder / 'train.py'), *script_args
    ],
                          cwd=folder,
                          capture_output=True,
                          text=True)
    return proc, out


def test_probe_times_each_step_and_stops_the_script(script):
    proc, out = probe(script, '--steps', '6')
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    times = result['step_seconds']
    # steps 2..6: the time between the ends of two steps
    assert sorted(map(int, times)) == [2, 3, 4, 5, 6]
    assert all(0.05 <= t < 5 for t in times.values())
    # the script stopped right after its 6th step, not at its 20th
    assert (script / 'last_step.txt').read_text() == '5'
    assert result['ops'] == {} and result['profiled_steps'] is None
    assert not (script / 'times.json.part').exists()
    # without --loader-workers the script's DataLoader is untouched
    assert (script / 'loader.txt').read_text() == '3 True'


def test_probe_profiles_the_chosen_steps(script):
    proc, out = probe(script, '--steps', '6', '--profile-from', '2',
                      '--profile-steps', '3')
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result['profiled_steps'] == [3, 5]
    ops = result['ops']
    # one forward matmul (addmm) per step; self ms >= 0, calls per step
    assert ops['aten::addmm'][2] == pytest.approx(1.0)
    assert all(v[0] >= 0 and v[1] >= v[0] - 1e-6 for v in ops.values())


def test_probe_runs_a_gpu_script_on_the_cpu(script):
    # without the adaptations the script fails on this CPU-only torch
    proc, _ = probe(script, '--steps', '3', script_args=['--cuda'])
    import torch
    if not torch.cuda.is_available():
        assert proc.returncode != 0
    proc, out = probe(
        script,
        '--steps',
        '3',
        '--no-cuda',
        '--empty-weights',
        'imagenet.pth',
        '--loader-workers',
        '0',
        script_args=['--cuda', '--weights'])
    assert proc.returncode == 0, proc.stderr
    assert 'weights/imagenet.pth -> {} (random initial weights)' in \
        proc.stdout
    assert (script / 'loader.txt').read_text() == '0 False'
    assert len(json.loads(out.read_text())['step_seconds']) == 2


def test_probe_reports_a_script_that_ends_early(script):
    proc, out = probe(script, '--steps', '25')
    assert proc.returncode != 0
    assert 'ended before step 25' in proc.stderr
    assert not out.exists()


def test_probe_rejects_bad_options(script):
    for options in (['--steps', '1'], [
            '--steps', '5', '--profile-from', '3', '--profile-steps', '3'
    ]):
        proc, _ = probe(script, *options)
        assert proc.returncode == 2


def write_xml(path, size, boxes):
    objs = ''.join(
        f'<object><name>{c}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>'
        f'<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>'
        for c, (x1, y1, x2, y2) in boxes)
    path.write_text(f'<annotation><size><width>{size[1]}</width><height>'
                    f'{size[0]}</height><depth>3</depth></size>{objs}'
                    '</annotation>')


def test_their_background_mask_uses_the_xml_integers_as_slices(tmp_path):
    xml = tmp_path / 'a.xml'
    write_xml(xml, (5, 7), [('cat', (1, 2, 3, 4)), ('dog', (5, 0, 7, 1))])
    mask = authors_step.their_bg_mask(str(xml))
    expected = np.ones((5, 7), np.uint8)
    expected[2:4, 1:3] = 0
    expected[0:1, 5:7] = 0
    np.testing.assert_array_equal(mask, expected)


def test_benchmark_data_folder(synthetic_root, tmp_path):
    import mmcv

    from bana_mm.utils.label_io import read_label_png

    # one greyscale image: their loader needs three channels
    with open(osp.join(synthetic_root,
                       'ImageSets/Segmentation/train.txt')) as f:
        ids = f.read().split()
    src = tmp_path / 'src'
    src.mkdir()
    for sub in ('Annotations', 'SegmentationClass', 'ImageSets',
                'class_names.txt'):
        if osp.exists(osp.join(synthetic_root, sub)):
            os.symlink(osp.join(synthetic_root, sub), src / sub)
    (src / 'JPEGImages').mkdir()
    for i, img_id in enumerate(ids):
        img = mmcv.imread(
            osp.join(synthetic_root, 'JPEGImages', img_id + '.jpg'))
        if i == 1:
            img = img[..., 0]
        mmcv.imwrite(img, str(src / 'JPEGImages' / (img_id + '.jpg')))
    out = tmp_path / 'VOC'
    out.mkdir()
    authors_step.make_data(str(src), str(out))
    listed = (out / 'ImageSets/Segmentation/train_aug.txt').read_text().split()
    assert listed == ids[:1] + ids[2:]
    for img_id in listed:
        mask = read_label_png(str(out / 'BgMaskfromBoxes' / (img_id + '.png')))
        np.testing.assert_array_equal(
            mask,
            authors_step.their_bg_mask(
                osp.join(synthetic_root, 'Annotations', img_id + '.xml')))
        gt = read_label_png(
            osp.join(synthetic_root, 'SegmentationClass', img_id + '.png'))
        ycrf = read_label_png(str(out / 'Generation/Ycrf' / (img_id + '.png')))
        yret = read_label_png(str(out / 'Generation/Yret' / (img_id + '.png')))
        np.testing.assert_array_equal(ycrf, gt)
        # Yret: the boxes filled (VOC pixels, one more row and column than
        # their slices), so every pixel their mask puts in a box is filled
        assert (yret[mask == 0] > 0).all()
        assert 0 < (yret > 0).sum() - (mask == 0).sum() <= \
            (mask.shape[0] + mask.shape[1]) * 20


def fake_authors(tmp_path):
    code = tmp_path / 'BANA'
    (code / 'configs').mkdir(parents=True)
    (code / 'weights').mkdir()
    (code / 'stage1.py').write_text('')
    (code / 'weights' / 'vgg_caffe.pth').write_text('big')
    (code / 'configs' / 'stage1.yml').write_text(
        textwrap.dedent('''\
        NAME: "ClsNet"
        SEED: 13
        DATA:
          ROOT: "../data/VOCdevkit/VOC2012"
          BATCH_SIZE: 20
          CROP_SIZE: (321, 321)
        SOLVER:
          MAX_ITER: 8000
        '''))
    return code


def test_their_config_changes_only_data_batch_and_crop(tmp_path):
    import yaml
    code = authors_step.copy_theirs(
        str(fake_authors(tmp_path)), str(tmp_path / 'copy'))
    assert not osp.exists(osp.join(code, 'weights', 'vgg_caffe.pth'))
    assert osp.isdir(osp.join(code, 'logs'))
    args = authors_step.parse_args([
        '--authors-dir',
        str(tmp_path / 'BANA'), '--data-root',
        str(tmp_path), '--batch', '4', '--crop', '161'
    ])
    path = authors_step.their_config(code, 1, '/data/VOC', args)
    with open(path) as f:
        cfg = yaml.safe_load(f)
    assert cfg['DATA'] == dict(
        ROOT='/data/VOC', BATCH_SIZE=4, CROP_SIZE='(161, 161)')
    assert cfg['SEED'] == 13 and cfg['SOLVER'] == dict(MAX_ITER=8000)


def test_our_config_matches_the_benchmark_settings(tmp_path):
    from mmengine.config import Config
    args = authors_step.parse_args([
        '--authors-dir',
        str(fake_authors(tmp_path)), '--data-root',
        str(tmp_path), '--batch', '3', '--crop', '161', '--workers', '0'
    ])
    for stage in (1, 3):
        cfg = Config.fromfile(
            authors_step.our_config(stage, '/data/VOC', str(tmp_path), args))
        loader = cfg.train_dataloader
        assert (loader.batch_size, loader.num_workers,
                loader.persistent_workers) == (3, 0, False)
        assert loader.dataset.data_root == '/data/VOC/'
        assert loader.dataset.ann_file.endswith('train_aug.txt')
        crops = [
            s['crop_size'] for s in loader.dataset.pipeline
            if s['type'] == 'RandomCrop'
        ]
        assert crops == [(161, 161)]
        assert cfg.model.backbone.init_cfg is None
        assert cfg.val_cfg is None and cfg.val_dataloader is None
        if stage == 3:
            assert loader.dataset.pseudo_label_dir == '/data/VOC/Generation'


def test_summary_and_op_table():
    s = authors_step.summarise(
        dict(theirs=[8.0, 9.0, 10.0], ours=[8.8, 9.0, 12.0]))
    assert s['theirs']['median'] == 9.0 and s['ours']['high'] == 12.0
    assert s['ratio_of_medians'] == pytest.approx(1.0)
    # per round 1.1, 1.0, 1.2 -> median 1.1
    assert s['paired_ratio'] == pytest.approx(1.1)
    theirs = dict(ops={'aten::mm': [5.0, 6.0, 2.0], 'x': [1.0, 9.0, 1.0]})
    ours = dict(ops={'aten::mm': [7.0, 7.0, 2.0], 'aten::add': [0.5, 1, 1]})
    rows = authors_step.op_rows(theirs, ours, top=5)
    assert rows[0] == ('aten::mm', '5.0 (2.0)', '7.0 (2.0)', '+2.0')
    assert rows[1] == ('aten::add', '0.0 (0.0)', '0.5 (1.0)', '+0.5')
    assert rows[-1] == ('all events, self CPU', '6.0', '7.5', '+1.5')
