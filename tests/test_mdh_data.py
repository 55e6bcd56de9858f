"""MDH F/W dataset (boxes, tags, bad input) and the F:W batch sampler."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest

from bana_mm.utils.label_io import read_label_png

SYN_CLASSES = ('disc', 'triangle', 'ring', 'star', 'blob')


def _ids(root, split='train'):
    with open(osp.join(root, 'ImageSets/Segmentation', f'{split}.txt')) as f:
        return [line.strip() for line in f if line.strip()]


@pytest.fixture
def fw_root(synthetic_root, tmp_path):
    """A copy of the synthetic set with F = 4 ids and W masks = ground truth
    with the outer ring set to 255 (so they differ from the ground truth)."""
    root = str(tmp_path / 'syn')
    shutil.copytree(synthetic_root, root)
    ids = _ids(root)
    with open(osp.join(root, 'full.txt'), 'w') as f:
        f.write('\n'.join(ids[:4]) + '\n')
    os.makedirs(osp.join(root, 'weak'))
    from bana_mm.utils.label_io import write_label_png
    for i in ids[4:]:
        mask = read_label_png(osp.join(root, 'SegmentationClass', i + '.png'))
        mask = mask.copy()
        mask[0, :] = 255
        write_label_png(osp.join(root, 'weak', i + '.png'), mask)
    return root


def _dataset(root, **kw):
    import bana_mm.seg  # noqa: F401
    from bana_mm.seg.mdh import MDHVOCDataset
    args = dict(
        data_root=root,
        ann_file='ImageSets/Segmentation/train.txt',
        full_split='full.txt',
        weak_label_dir='weak',
        metainfo=dict(classes=SYN_CLASSES),
        pipeline=[])
    args.update(kw)
    return MDHVOCDataset(**args)


def test_dataset_tags_labels_and_boxes(fw_root):
    ds = _dataset(fw_root)
    ids = _ids(fw_root)
    assert len(ds) == len(ids) == 16
    flags = ds.full_flags()
    assert flags == [True] * 4 + [False] * 12
    info = ds.get_data_info(5)
    assert info['seg_map_path'] == osp.join(fw_root, 'weak', ids[5] + '.png')
    assert ds.get_data_info(0)['seg_map_path'].endswith(
        osp.join('SegmentationClass', ids[0] + '.png'))
    # boxes from the XML: tight boxes of the instance masks, labels = class
    inst = read_label_png(
        osp.join(fw_root, 'SegmentationObject', ids[5] + '.png'))
    cls = read_label_png(
        osp.join(fw_root, 'SegmentationClass', ids[5] + '.png'))
    for box, label in zip(info['gt_bboxes'], info['gt_bboxes_labels']):
        x1, y1, x2, y2 = box.astype(int)
        assert label >= 1
        assert (cls[y1:y2, x1:x2] == label).any()
    assert len(info['gt_bboxes']) == len(np.setdiff1d(np.unique(inst), [0]))
    # F images carry their boxes too (their priors come from them)
    assert len(ds.get_data_info(0)['gt_bboxes']) > 0


def test_boxes_derived_from_instance_masks_without_xml(fw_root):
    ids = _ids(fw_root)
    with_xml = _dataset(fw_root).get_data_info(2)
    os.remove(osp.join(fw_root, 'Annotations', ids[2] + '.xml'))
    derived = _dataset(fw_root).get_data_info(2)
    # the synthetic XML boxes are the tight boxes of the visible masks
    np.testing.assert_allclose(
        np.sort(derived['gt_bboxes'], 0), np.sort(with_xml['gt_bboxes'], 0))
    assert sorted(derived['gt_bboxes_labels']) == \
        sorted(with_xml['gt_bboxes_labels'])


def test_eval_mode_without_splits_and_optional_gt(fw_root):
    ids = _ids(fw_root)
    os.remove(osp.join(fw_root, 'SegmentationClass', ids[1] + '.png'))
    ds = _dataset(fw_root, full_split=None, weak_label_dir=None)
    assert ds.get_data_info(1)['seg_map_path'] is None
    assert ds.get_data_info(0)['is_full'] is True


def test_bad_splits_raise_naming_the_file(fw_root):
    ids = _ids(fw_root)
    with open(osp.join(fw_root, 'bad.txt'), 'w') as f:
        f.write('not_an_id\n')
    with pytest.raises(ValueError, match=r'bad\.txt.*not_an_id'):
        _dataset(fw_root, full_split='bad.txt')
    open(osp.join(fw_root, 'empty.txt'), 'w').close()
    with pytest.raises(ValueError, match=r'empty\.txt is empty'):
        _dataset(fw_root, full_split='empty.txt')
    os.remove(osp.join(fw_root, 'weak', ids[7] + '.png'))
    with pytest.raises(FileNotFoundError, match=ids[7]):
        _dataset(fw_root)
    os.remove(osp.join(fw_root, 'SegmentationClass', ids[0] + '.png'))
    with pytest.raises(FileNotFoundError, match='F id'):
        _dataset(fw_root)


class _Sampler:

    def __init__(self, ds):
        self.dataset, self.seed = ds, 3


def test_batch_sampler_mix_and_errors(fw_root):
    from bana_mm.seg.mdh import MixedBatchSampler
    ds = _dataset(fw_root)
    flags = ds.full_flags()
    sampler = MixedBatchSampler(_Sampler(ds), batch_size=8, batch_ratio=(1, 3))
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2
    for batch in batches:
        assert len(batch) == 8
        assert sum(flags[i] for i in batch) == 2  # 8 * 1 / (1 + 3)
    # W (12 ids) is walked through before any repeat: 12 distinct of 12
    weak_seen = [i for b in batches for i in b if not flags[i]]
    assert len(set(weak_seen)) == 12
    assert list(MixedBatchSampler(_Sampler(ds), 8, (1, 3))) == batches
    # infinite: the same first epoch, then more batches of the same mix
    endless = iter(MixedBatchSampler(_Sampler(ds), 8, (1, 3), infinite=True))
    more = [next(endless) for _ in range(5 * len(batches))]
    assert more[:len(batches)] == batches
    assert all(sum(flags[i] for i in b) == 2 and len(b) == 8 for b in more)
    with pytest.raises(ValueError, match='zero or negative part'):
        MixedBatchSampler(_Sampler(ds), 8, batch_ratio=(7, 0))
    with pytest.raises(ValueError, match='batch_size >= 2'):
        MixedBatchSampler(_Sampler(ds), 1)


def test_batch_sampler_empty_splits_name_the_split(fw_root):
    from bana_mm.seg.mdh import MixedBatchSampler
    for i in _ids(fw_root)[:4]:  # give the F ids weak masks too
        shutil.copy(
            osp.join(fw_root, 'SegmentationClass', i + '.png'),
            osp.join(fw_root, 'weak', i + '.png'))
    all_w = _dataset(fw_root, full_split=None)  # F empty, all W
    with pytest.raises(ValueError, match=r'F split .*train\.txt is empty'):
        MixedBatchSampler(_Sampler(all_w), 4)
    with open(osp.join(fw_root, 'all.txt'), 'w') as f:
        f.write('\n'.join(_ids(fw_root)))
    all_f = _dataset(fw_root, full_split='all.txt')
    with pytest.raises(ValueError, match=r'W split .*train\.txt is empty'):
        MixedBatchSampler(_Sampler(all_f), 4)


def test_annnet_tiny_dataloader_yields_tagged_5_channel_batches(fw_root):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    import bana_mm.seg  # noqa: F401
    cfg = Config.fromfile(
        osp.join(
            osp.dirname(__file__), '..', 'configs', 'mdh', 'annnet_tiny.py'))
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root': fw_root,
        'train_dataloader.dataset.full_split': 'full.txt',
        'train_dataloader.dataset.weak_label_dir': 'weak',
        'train_dataloader.dataset.metainfo.classes': SYN_CLASSES,
        'train_dataloader.batch_size': 4
    })
    with DefaultScope.overwrite_default_scope('mmseg'):
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        batch = next(iter(loader))
    assert [x.shape[0] for x in batch['inputs']] == [5] * 4
    assert all(tuple(x.shape[1:]) == (128, 128) for x in batch['inputs'])
    tags = [s.metainfo['is_full'] for s in batch['data_samples']]
    assert sorted(tags) == [False, False, True, True]


def test_annnet_predicts_w_images_without_ground_truth(fw_root):
    """The test dataloader over an arbitrary id list (W, no GT PNG) feeds
    5-channel inputs to AnnNet, which predicts at the original size."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    from mmseg.registry import MODELS

    import bana_mm.seg  # noqa: F401
    ids = _ids(fw_root)[4:6]
    with open(osp.join(fw_root, 'w.txt'), 'w') as f:
        f.write('\n'.join(ids))
    for i in ids:
        os.remove(osp.join(fw_root, 'SegmentationClass', i + '.png'))
    cfg = Config.fromfile(
        osp.join(
            osp.dirname(__file__), '..', 'configs', 'mdh', 'annnet_tiny.py'))
    cfg.merge_from_dict({
        'test_dataloader.dataset.data_root': fw_root,
        'test_dataloader.dataset.ann_file': 'w.txt',
        'test_dataloader.dataset.metainfo.classes': SYN_CLASSES,
        'model.decode_head.num_classes': len(SYN_CLASSES) + 1
    })
    with DefaultScope.overwrite_default_scope('mmseg'):
        loader = Runner.build_dataloader(cfg.test_dataloader, seed=0)
        model = MODELS.build(cfg.model).eval()
        for batch in loader:
            assert batch['inputs'][0].shape[0] == 5
            sample = batch['data_samples'][0]
            assert 'gt_sem_seg' not in sample and not sample.is_full
            with torch.no_grad():
                pred = model.test_step(batch)[0]
            assert pred.pred_sem_seg.shape == sample.ori_shape
            assert pred.seg_logits.data.shape[0] == len(SYN_CLASSES) + 1
