"""MDH pipeline side (bana_mm.apis.mdh): F/W splits and their bad input,
proposal files (resumable, scored), the Ycrf second proposal, sheets."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest

from bana_mm.apis.common import VOCLayout
from bana_mm.apis.mdh import default_full_ids, make_splits, run_proposals
from bana_mm.core.baselines import GrabCutOptions
from bana_mm.seg.mdh.label_writers import box_dataset, boxes_of
from bana_mm.utils.label_io import read_label_png

TRAIN = 'ImageSets/Segmentation/train.txt'


def _ids(root):
    with open(osp.join(root, TRAIN)) as f:
        return [ln.strip() for ln in f if ln.strip()]


def _pngs(folder):
    return [f for f in os.listdir(folder) if f.endswith('.png')]


def _write(path, ids):
    with open(path, 'w') as f:
        f.write('\n'.join(ids) + '\n')
    return str(path)


def test_default_full_ids_fixed_and_even():
    ids = [f'{i:03d}' for i in range(71)]
    full = default_full_ids(list(reversed(ids)))
    assert full == default_full_ids(ids)  # order of the list is irrelevant
    assert len(full) == 10  # round(71 * 1464 / 10582)
    assert full[0] == '000' and full == sorted(full)
    assert default_full_ids(['a']) == ['a']


def test_make_splits(synthetic_root, tmp_path):
    train = _ids(synthetic_root)
    splits = make_splits(synthetic_root, TRAIN, str(tmp_path / 's'),
                         _write(tmp_path / 'f.txt', train[:3] + train[:1]))
    assert splits.full == train[:3] and splits.weak == train[3:]
    with open(splits.weak_file) as f:
        assert f.read().split() == train[3:]
    default = make_splits(synthetic_root, TRAIN, str(tmp_path / 'd'))
    assert default.full == default_full_ids(train)
    assert set(default.full) | set(default.weak) == set(train)


def test_make_splits_bad_input(synthetic_root, tmp_path):
    train = _ids(synthetic_root)
    out = str(tmp_path / 's')
    with pytest.raises(ValueError, match='not in the training split'):
        make_splits(synthetic_root, TRAIN, out,
                    _write(tmp_path / 'a.txt', [train[0], 'nope_17']))
    with pytest.raises(ValueError, match='W is empty'):
        make_splits(synthetic_root, TRAIN, out,
                    _write(tmp_path / 'b.txt', train))
    with pytest.raises(ValueError, match='empty'):
        make_splits(synthetic_root, TRAIN, out, _write(tmp_path / 'c.txt', []))
    with pytest.raises(FileNotFoundError, match='not found'):
        make_splits(synthetic_root, TRAIN, out, str(tmp_path / 'none.txt'))
    # an F id whose ground truth is missing is named
    root = str(tmp_path / 'copy')
    shutil.copytree(synthetic_root, root)
    os.unlink(osp.join(root, 'SegmentationClass', f'{train[1]}.png'))
    with pytest.raises(FileNotFoundError, match=f'{train[1]}.png'):
        make_splits(root, TRAIN, out, _write(tmp_path / 'd.txt', train[:2]))


@pytest.fixture(scope='module')
def layout_and_splits(synthetic_root, tmp_path_factory):
    layout = VOCLayout.inspect(synthetic_root)
    train = _ids(synthetic_root)
    work = tmp_path_factory.mktemp('mdh')
    splits = make_splits(synthetic_root, TRAIN, str(work / 'splits'),
                         _write(work / 'full.txt', train[:4]))
    return layout, splits, work


def test_proposals_written_scored_and_resumed(layout_and_splits):
    layout, splits, work = layout_and_splits
    out = str(work / 'proposals')
    entry = run_proposals(layout, splits, out, grabcut=GrabCutOptions(2))
    assert entry['second'] == 'box' and entry['ycrf_dir'] is None
    assert entry['written'] == len(splits.weak) and entry['skipped'] == 0
    assert entry['evaluated'] == len(splits.weak)
    for stem in splits.weak:
        mask = read_label_png(osp.join(out, 'masks', f'{stem}.png'))
        gc = read_label_png(osp.join(out, 'grabcut', f'{stem}.png'))
        # box fallback: object pixels are GrabCut foreground, background
        # is GrabCut background, the rest of each box is ignored
        assert (gc[(mask != 0) & (mask != 255)] != 0).all()
        assert (gc[mask == 0] == 0).all()
        assert (mask == 255).any()
    assert 0 < entry['ignored_share'] < 100  # percent
    assert 0 < entry['miou'] <= 100 and 0 < entry['baselines']['box'] <= 100
    assert entry['baselines']['grabcut'] is not None
    assert osp.isfile(osp.join(out, 'run.json'))
    again = run_proposals(layout, splits, out, grabcut=GrabCutOptions(2))
    assert again['written'] == 0 and again['skipped'] == len(splits.weak)
    assert again['miou'] == entry['miou']


def test_proposals_with_ground_truth_as_ycrf_are_exact(layout_and_splits):
    """With Ycrf = the ground truth, every pixel the fusion keeps is right
    (agreement, ignore priority and paste order together)."""
    layout, splits, work = layout_and_splits
    bana = work / 'bana'
    shutil.copytree(osp.join(layout.root, 'SegmentationClass'), bana / 'Ycrf')
    entry = run_proposals(
        layout,
        splits,
        str(work / 'prop_ycrf'),
        str(bana / 'Ycrf'),
        grabcut=GrabCutOptions(2))
    assert entry['second'] == 'ycrf'
    assert entry['miou_labelled'] == 100.0
    assert entry['miou'] < 100.0  # the disagreements are ignored
    with pytest.raises(FileNotFoundError, match='Ycrf folder not found'):
        run_proposals(layout, splits, str(work / 'x'), str(work / 'none'))


def test_proposal_workers_match_inline_and_bad_images_are_named(
        layout_and_splits, tmp_path):
    """GrabCut in worker processes writes the same files as inline; a
    corrupt W image stops the step with its path after the others are
    written, and a rerun resumes."""
    layout, splits, work = layout_and_splits
    inline = str(work / 'proposals_inline')
    run_proposals(layout, splits, inline, grabcut=GrabCutOptions(2), workers=0)
    pooled = str(work / 'proposals_pooled')
    entry = run_proposals(
        layout, splits, pooled, grabcut=GrabCutOptions(2), workers=2)
    assert entry['written'] == len(splits.weak)
    for sub in ('masks', 'grabcut'):
        for stem in splits.weak:
            a = read_label_png(osp.join(inline, sub, f'{stem}.png'))
            b = read_label_png(osp.join(pooled, sub, f'{stem}.png'))
            np.testing.assert_array_equal(a, b)
    # a copy of the dataset with one corrupt W image
    root = str(tmp_path / 'copy')
    shutil.copytree(layout.root, root)
    bad = splits.weak[1]
    bad_path = osp.join(root, 'JPEGImages', f'{bad}.jpg')
    with open(bad_path, 'wb') as f:
        f.write(b'not a jpeg')
    copy_layout = VOCLayout.inspect(root)
    out = str(tmp_path / 'proposals')
    with pytest.raises(RuntimeError, match=f'(?s)1 proposal.*{bad}.jpg'):
        run_proposals(
            copy_layout, splits, out, grabcut=GrabCutOptions(2), workers=1)
    written = sorted(os.listdir(osp.join(out, 'masks')))
    assert written == sorted(f'{i}.png' for i in splits.weak if i != bad)
    shutil.copy(osp.join(layout.root, 'JPEGImages', f'{bad}.jpg'), bad_path)
    again = run_proposals(
        copy_layout, splits, out, grabcut=GrabCutOptions(2), workers=0)
    assert again['written'] == 1
    assert again['skipped'] == len(splits.weak) - 1


def test_mdh_sheet(layout_and_splits):
    from bana_mm.visualization.mdh_sheet import mdh_sheet
    layout, splits, work = layout_and_splits
    dataset = box_dataset(layout.root, splits.weak_file, layout.classes)
    info = dataset.get_data_info(0)
    boxes, labels = boxes_of(info)
    import mmcv
    image = mmcv.imread(info['img_path'], channel_order='rgb')
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[:4] = 255
    sheet = mdh_sheet(image, boxes, labels, layout.classes,
                      np.full(mask.shape, 128.0), mask, mask, mask, mask)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    assert sheet.shape[0] == 2 * (200 + 22)  # 7 panels on 2 rows of 4


def test_run_mdh_pipeline_rounds_and_resume(synthetic_root, tmp_path):
    """The whole job on the synthetic set (2 iterations per network, 2
    rounds): summary keys, round 2 trained on round 1's pseudo masks,
    sheets, then a rerun reuses every result."""
    from bana_mm.apis.mdh import run_mdh_pipeline
    work = str(tmp_path / 'w')
    summary = run_mdh_pipeline(
        work,
        synthetic_root,
        rounds=2,
        max_iters=2,
        num_vis=1,
        tau=0.5,
        grabcut_iterations=1)
    mdh = summary['mdh']
    assert mdh['full'] == 2 and mdh['weak'] == 14
    for key in ('miou', 'ignored_share'):
        assert mdh['proposals'][key] is not None
        assert mdh['pseudo'][key] is not None
    for net in ('annnet', 'segnet'):
        assert mdh[net]['iters'] == 2
        assert np.isfinite([mdh[net]['loss_first'],
                            mdh[net]['loss_last']]).all()
    assert 0 <= mdh['segnet']['miou_val'] <= 100
    assert 0 <= mdh['annnet']['miou_val'] <= 100  # AnnNet's own val
    assert set(mdh['baselines']) == {'box', 'grabcut'}
    first, second = mdh['history']
    assert first['trained_on'] == mdh['proposals']['out_dir']
    assert second['trained_on'] == first['pseudo']['out_dir']
    assert mdh['pseudo'] == second['pseudo']
    assert len(_pngs(second['pseudo']['out_dir'])) == 14
    assert len(mdh['pictures']) == 1 and osp.isfile(mdh['pictures'][0])
    ckpt = mdh['annnet']['checkpoint']
    stamp = os.path.getmtime(ckpt)
    again = run_mdh_pipeline(
        work,
        synthetic_root,
        rounds=2,
        max_iters=2,
        num_vis=0,
        tau=0.5,
        grabcut_iterations=1)['mdh']
    assert os.path.getmtime(ckpt) == stamp  # not retrained
    assert again['pseudo']['skipped'] == 14 and again['pseudo']['written'] == 0
    assert again['proposals']['skipped'] == 14
    assert again['segnet']['loss_last'] == mdh['segnet']['loss_last']


def test_f_only_segnet_reference(layout_and_splits, tmp_path):
    """The F-only reference: the SegNet config trained on the F images
    alone (every sample fully labelled, no F:W sampler), same model."""
    from mmengine.registry import init_default_scope

    from bana_mm.apis.mdh import run_mdh_pipeline
    from bana_mm.apis.mdh_steps import f_only_config, mdh_config
    from bana_mm.seg.mdh.dataset import MDHVOCDataset
    layout, splits, _ = layout_and_splits
    cfg = f_only_config('segnet_tiny.py', layout, splits,
                        str(tmp_path / 'cfg'))
    semi = mdh_config('segnet_tiny.py', layout, splits, splits.full_file,
                      str(tmp_path / 'cfg2'))
    assert cfg.model == semi.model and cfg.optim_wrapper == semi.optim_wrapper
    assert 'batch_sampler' not in cfg.train_dataloader
    init_default_scope('mmseg')
    data = dict(cfg.train_dataloader.dataset)
    data.pop('type')
    dataset = MDHVOCDataset(**data)
    ids = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]
    assert sorted(ids) == sorted(splits.full)
    assert all(
        dataset.get_data_info(i)['is_full'] for i in range(len(dataset)))

    root = layout.root
    mdh = run_mdh_pipeline(
        str(tmp_path / 'w'),
        root,
        max_iters=2,
        num_vis=0,
        grabcut_iterations=1,
        twin=True)['mdh']
    f_only = mdh['segnet_f_only']
    assert f_only['iters'] == 2 and 0 <= f_only['miou_val'] <= 100
    assert 'segnet_f_only' in f_only['checkpoint']


def test_lite0_preset_runs(synthetic_root, tmp_path):
    """MDH on ImageNet EfficientNet-Lite0 (5-channel AnnNet, SegNet and the
    F-only reference), 1 iteration each."""
    from bana_mm.apis.mdh import run_mdh_pipeline
    mdh = run_mdh_pipeline(
        str(tmp_path),
        synthetic_root,
        preset='lite0',
        max_iters=1,
        num_vis=0,
        grabcut_iterations=1)['mdh']
    assert mdh['configs'] == dict(
        annnet='annnet_lite0_voc.py', segnet='segnet_lite0_voc.py')
    for key in ('annnet', 'segnet', 'segnet_f_only'):
        assert mdh[key]['iters'] == 1, key
    assert mdh['pseudo']['box_constraint'] == 'restrict'  # the preset's
    assert 0 <= mdh['segnet_f_only']['miou_val'] <= 100
    # the preset's GrabCut (chosen on val, docs/mdh.md)
    assert mdh['proposals']['grabcut_margin'] == 1.0
    assert mdh['proposals']['grabcut_fill_below'] == 0.1
    # and its pseudo masks: the proposals, their ignored pixels filled
    assert mdh['pseudo']['mode'] == 'fill_ignored'
    for stem in _weak_ids(mdh):
        proposal = read_label_png(
            osp.join(mdh['proposals']['out_dir'], f'{stem}.png'))
        pseudo = read_label_png(
            osp.join(mdh['pseudo']['out_dir'], f'{stem}.png'))
        kept = proposal != 255
        np.testing.assert_array_equal(pseudo[kept], proposal[kept])


def _weak_ids(mdh):
    with open(mdh['splits']['weak']) as f:
        return [line.strip() for line in f if line.strip()]


def test_fill_ignored_needs_every_training_mask(tmp_path):
    from bana_mm.seg.mdh.label_writers import write_pseudo_masks
    (tmp_path / 'train').mkdir()
    with pytest.raises(FileNotFoundError, match=r'1 training mask.*a\.png'):
        write_pseudo_masks(
            None,
            None, ['a'],
            str(tmp_path / 'pseudo'),
            fill_from=str(tmp_path / 'train'))
    assert not osp.isdir(tmp_path / 'pseudo')  # nothing half-written


def test_grabcut_options_of_the_presets():
    from bana_mm.apis.mdh import grabcut_options
    assert grabcut_options('tiny') == GrabCutOptions(5, 0.5, None)
    assert grabcut_options('lite0') == GrabCutOptions(5, 1.0, 0.1)
    assert grabcut_options(
        'lite0', 2, margin=0.25,
        fill_below='off') == GrabCutOptions(2, 0.25, None)
    assert grabcut_options(
        'full', fill_below=0.3) == GrabCutOptions(5, 0.5, 0.3)


def test_filled_grabcut_boxes_reach_the_proposals(layout_and_splits,
                                                  monkeypatch):
    """fill_below: a box GrabCut empties is filled, so the proposal labels
    the whole box with its class instead of ignoring it; the option is part
    of the step's fingerprint (a change redoes the proposals)."""
    import cv2
    layout, splits, work = layout_and_splits

    def keeps_nothing(image, mask, rect, bgd, fgd, iterations, mode):
        mask[:] = cv2.GC_BGD

    monkeypatch.setattr(cv2, 'grabCut', keeps_nothing)
    out = str(work / 'proposals')
    plain = run_proposals(layout, splits, out, grabcut=GrabCutOptions(1))
    assert plain['grabcut_fill_below'] is None
    dataset = box_dataset(layout.root, splits.weak_file, layout.classes)
    stems = []
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        stems.append(info['img_id'])
        mask = read_label_png(osp.join(out, 'masks', f'{stems[-1]}.png'))
        assert set(np.unique(mask)) <= {0, 255}  # every box ignored
    filled = run_proposals(
        layout, splits, out, grabcut=GrabCutOptions(1, fill_below=0.0))
    assert filled['written'] == len(splits.weak)  # redone, not skipped
    assert filled['grabcut_fill_below'] == 0.0
    for idx, stem in enumerate(stems):
        boxes, labels = boxes_of(dataset.get_data_info(idx))
        mask = read_label_png(osp.join(out, 'masks', f'{stem}.png'))
        assert not (mask == 255).any()  # box and GrabCut now agree
        x1, y1, x2, y2 = boxes[np.argmin(
            (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
        centre = mask[int((y1 + y2) / 2), int((x1 + x2) / 2)]
        assert centre - 1 in labels  # the smallest box's centre: a class


def test_rerun_with_changed_inputs_redoes_the_steps(synthetic_root, tmp_path):
    """Each step folder records the fingerprint of its inputs: a rerun with
    another τ rewrites the pseudo masks (not skipped as existing) and
    retrains SegNet but reuses AnnNet; more rounds reuse round 1 and keep
    round 1's SegNet in the history (paper Table 6); other proposals
    retrain everything downstream."""
    from bana_mm.apis.mdh import run_mdh_pipeline
    work = str(tmp_path / 'w')

    def run(**kwargs):
        options = dict(max_iters=2, num_vis=0, grabcut_iterations=1, workers=0)
        options.update(kwargs)
        return run_mdh_pipeline(work, synthetic_root, **options)['mdh']

    def mtime(path):
        return os.path.getmtime(path)

    first = run(tau=0.5)
    annnet_ckpt = first['annnet']['checkpoint']
    annnet_time = mtime(annnet_ckpt)
    segnet_time = mtime(first['segnet']['checkpoint'])
    second = run(tau=0.6)
    assert first['pseudo']['box_constraint'] is None  # tiny: the paper's
    assert second['proposals']['skipped'] == 14
    assert mtime(annnet_ckpt) == annnet_time  # AnnNet reused
    assert second['pseudo']['written'] == 14  # not kept from tau 0.5
    assert second['pseudo']['tau'] == 0.6
    assert mtime(second['segnet']['checkpoint']) != segnet_time
    two = run(tau=0.6, rounds=2)
    assert mtime(annnet_ckpt) == annnet_time
    assert two['history'][0]['pseudo']['skipped'] == 14
    assert two['history'][0]['segnet'] == second['segnet']  # Table 6
    assert '/round2/segnet/' in two['segnet']['checkpoint']
    assert two['history'][1]['segnet'] == two['segnet']
    boxed = run(tau=0.6, box_constraint='restrict')
    assert mtime(annnet_ckpt) == annnet_time
    assert boxed['pseudo']['written'] == 14
    assert boxed['pseudo']['box_constraint'] == 'restrict'
    assert second['pseudo']['mode'] == 'eq3'  # tiny: the paper's
    filled = run(tau=0.6, pseudo_masks='fill_ignored')
    assert mtime(annnet_ckpt) == annnet_time
    assert filled['pseudo']['written'] == 14  # redone in the new mode
    assert filled['pseudo']['mode'] == 'fill_ignored'
    other = run(tau=0.6, grabcut_iterations=2)
    assert other['proposals']['written'] == 14
    assert mtime(annnet_ckpt) != annnet_time  # retrained on new proposals
    assert 'segnet' not in other['history'][0] or \
        other['history'][0]['segnet'] != second['segnet']


def test_run_mdh_pipeline_with_variant_configs(synthetic_root, tmp_path):
    """--annnet-config / --segnet-config: the paper's Table 2 / 4 variants
    (3-channel AnnNet without priors, single-head SegNet) run through the
    same job, and the summary says which configs were used."""
    from bana_mm.apis.mdh import run_mdh_pipeline
    work = tmp_path / 'w'
    mdh = run_mdh_pipeline(
        str(work),
        synthetic_root,
        max_iters=2,
        num_vis=0,
        grabcut_iterations=1,
        workers=0,
        annnet_config='annnet_tiny_nopriors.py',
        segnet_config='segnet_tiny_single.py')['mdh']
    assert mdh['configs'] == dict(
        annnet='annnet_tiny_nopriors.py', segnet='segnet_tiny_single.py')
    from mmengine.config import Config
    annnet = Config.fromfile(
        str(work / 'round1' / 'annnet' / 'annnet_tiny_nopriors.py'))
    assert len(annnet.model.data_preprocessor.mean) == 3  # RGB only
    segnet = Config.fromfile(
        str(work / 'round1' / 'segnet' / 'segnet_tiny_single.py'))
    assert segnet.model.decode_head.head_mode == 'single'
    assert len(_pngs(mdh['pseudo']['out_dir'])) == 14


@pytest.mark.parametrize('kwargs, match',
                         [(dict(tau=1.0), r'\(0, 1\)'),
                          (dict(tau=0.0), r'\(0, 1\)'),
                          (dict(rounds=0), 'rounds'),
                          (dict(preset='huge'), 'preset'),
                          (dict(mix_ratio=(7, 0)), 'zero'),
                          (dict(box_constraint='keep'), 'box constraint'),
                          (dict(grabcut_fill_below=1.0), 'fill_below'),
                          (dict(grabcut_margin=-1.0), 'margin'),
                          (dict(pseudo_masks='union'), 'pseudo masks')])
def test_run_mdh_pipeline_bad_arguments(synthetic_root, tmp_path, kwargs,
                                        match):
    from bana_mm.apis.mdh import run_mdh_pipeline
    with pytest.raises(ValueError, match=match):
        run_mdh_pipeline(str(tmp_path), synthetic_root, **kwargs)
    assert not osp.isdir(osp.join(tmp_path, 'proposals'))


def test_score_label_dir_by_hand(tmp_path):
    """mIoU counts ignored pixels as misses, miou_labelled does not; the
    ignored share is over all pixels; a size mismatch names the file."""
    from bana_mm.evaluation import score_label_dir
    from bana_mm.utils.label_io import write_label_png
    gt = np.zeros((4, 4), np.uint8)
    gt[:2] = 1  # 8 pixels of class 1, 8 of background
    pred = gt.copy()
    pred[0, :2] = 255  # 2 object pixels ignored
    write_label_png(str(tmp_path / 'gt' / 'a.png'), gt)
    write_label_png(str(tmp_path / 'pred' / 'a.png'), pred)
    out = score_label_dir(
        str(tmp_path / 'pred'), ['a'], str(tmp_path / 'gt'), ('bg', 'obj'),
        {'a': (np.array([[0, 0, 4, 2]], np.float32), np.array([0]))})
    # class 1: I = 6, U = 8; background: I = 8, U = 8
    assert out['miou'] == pytest.approx((6 / 8 + 1) / 2 * 100, abs=0.01)
    assert out['miou_labelled'] == 100.0
    assert out['ignored_share'] == 12.5
    assert out['box'] == 100.0 and out['evaluated'] == 1
    write_label_png(str(tmp_path / 'pred' / 'b.png'), np.zeros((3, 3)))
    write_label_png(str(tmp_path / 'gt' / 'b.png'), gt)
    with pytest.raises(ValueError, match='b.png'):
        score_label_dir(
            str(tmp_path / 'pred'), ['b'], str(tmp_path / 'gt'), ('bg', 'obj'))
