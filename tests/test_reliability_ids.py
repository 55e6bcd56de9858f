"""Issue 20 class 1: an image id is a file name inside the data root, never
a path. One rule (:func:`bana_mm.utils.io.id_problem`), checked where split
lists are read (:func:`~bana_mm.utils.io.read_split`) and again where an
output is named after an id (:func:`~bana_mm.utils.io.output_path`)."""
import os
import os.path as osp
import shutil

import pytest
from test_box_datasets import captured_log, warnings_of

from bana_mm.utils.io import SplitIdError, output_path, read_split

VAL = 'ImageSets/Segmentation/val.txt'
CLASSES = ('disc', 'triangle', 'ring', 'star', 'blob')


@pytest.mark.parametrize(
    'line, words', [('../../etc/x', ['path separator']),
                    ('/data/JPEGImages/a', ['path separator']),
                    ('a/img', ['sub-folders']), ('..', ['not a file name']),
                    ('my image', ["'my image'", 'cannot contain a space']),
                    ('a b 1', ['cannot contain a space']),
                    ('im\u200bg', ['invisible', 'U+200B'])])
def test_split_id_that_is_not_a_name_names_file_and_line(
        tmp_path, line, words):
    path = tmp_path / 'split.txt'
    path.write_text(f'good_1\n\n{line}\ngood_2\n', encoding='utf-8')
    with pytest.raises(SplitIdError) as info:
        read_split(str(path))
    message = str(info.value)
    for word in (f'{path}, line 3', *words):
        assert word in message, (word, message)


def test_split_flags_bom_and_encoding(tmp_path):
    """VOC's per-class lists (id, flag) still read; a byte-order mark is
    dropped with a warning that shows it; non-UTF-8 bytes name the line."""
    path = tmp_path / 'split.txt'
    path.write_text('a  1\nb -1\nc 0\n')
    assert read_split(str(path)) == ['a', 'b', 'c']
    path.write_bytes(b'\xef\xbb\xbfa\nb\n')
    with captured_log() as records:
        assert read_split(str(path)) == ['a', 'b']
    assert any(
        str(path) in m and 'byte-order mark' in m
        for m in warnings_of(records))
    path.write_bytes(b'a\nb\xff\n')
    with pytest.raises(SplitIdError, match=f'{path}, line 2: not UTF-8'):
        read_split(str(path))


def _with_split(root: str, tmp_path, text: str) -> str:
    """A copy of ``root`` whose val split is ``text``."""
    copy = str(tmp_path / 'root')
    shutil.copytree(root, copy)
    with open(osp.join(copy, VAL), 'w') as f:
        f.write(text)
    return copy


def _build(registry_scope: str, cfg: dict):
    from mmengine.registry import DefaultScope

    import bana_mm.det  # noqa: F401
    import bana_mm.seg  # noqa: F401
    registry = __import__(
        f'{registry_scope}.registry', fromlist=['DATASETS']).DATASETS
    with DefaultScope.overwrite_default_scope(registry_scope):
        return registry.build(cfg)


@pytest.mark.parametrize('reader', ['box', 'seg', 'mdh', 'mdh_splits'])
def test_every_split_reader_refuses_a_path_id(synthetic_root, tmp_path,
                                              reader):
    """The escape of issue 20: an id ``../<root>/JPEGImages/<id>`` (or an
    absolute one) reached the MDH sheet writer, which replaced the input
    JPEG. Every reader of a split stops at the split, naming file and line;
    nothing is written."""
    ids = read_split(osp.join(synthetic_root, VAL))
    root = _with_split(synthetic_root, tmp_path,
                       f'{ids[0]}\n../root/JPEGImages/{ids[1]}\n')
    split = osp.join(root, VAL)
    before = sorted(os.listdir(tmp_path))
    common = dict(
        data_root=root + '/',
        ann_file=VAL,
        pipeline=[],
        metainfo=dict(classes=CLASSES))
    seg_prefix = dict(img_path='JPEGImages', seg_map_path='SegmentationClass')
    configs = dict(
        box=('mmdet', dict(type='VOCBoxDataset', test_mode=True)),
        seg=('mmseg',
             dict(type='PseudoLabelVOCDataset', data_prefix=seg_prefix)),
        mdh=('mmseg', dict(type='MDHVOCDataset', data_prefix=seg_prefix)))
    with pytest.raises(SplitIdError, match=f'{split}, line 2'):
        if reader in configs:
            scope, cfg = configs[reader]
            _build(scope, dict(cfg, **common))
        else:
            from bana_mm.apis.mdh_steps import make_splits
            make_splits(root, VAL, str(tmp_path / 'work'))
    assert sorted(os.listdir(tmp_path)) == before


def test_outputs_never_leave_their_folder(synthetic_root, tmp_path):
    """Second guard, where a file is named after an id: stage 2's label
    paths and the MDH writers refuse a name that is a path."""
    from bana_mm.seg.mdh.label_writers import box_dataset, write_sheets
    from bana_mm.utils.label_layout import label_path
    out = str(tmp_path / 'out')
    assert output_path(out, 'a', '.png') == osp.join(out, 'a.png')
    for bad in ('../a', '/abs/a', 'sub/a', '..'):
        with pytest.raises(SplitIdError, match='refusing to write'):
            output_path(out, bad, '.png')
        with pytest.raises(SplitIdError, match='refusing to write'):
            label_path(out, 'Ycrf', bad)
    root = str(tmp_path / 'root')  # a copy: the old code overwrote it
    shutil.copytree(synthetic_root, root)
    dataset = box_dataset(root, VAL, CLASSES)
    info = dict(dataset.get_data_info(0))
    victim = info['img_path']
    with open(victim, 'rb') as f:
        data = f.read()
    # a dataset entry whose id is a path (as an old split could give)
    info['img_id'] = osp.splitext(osp.relpath(victim, out))[0]

    class _One:

        def __len__(self):
            return 1

        def get_data_info(self, i):
            return info

    with pytest.raises(SplitIdError, match='path separator'):
        write_sheets(_One(), CLASSES, [info['img_id']], out, [])
    with open(victim, 'rb') as f:
        assert f.read() == data, 'the input image was overwritten'


def test_stage2_output_names_are_unique(tmp_path):
    """Stage 2 names labels by file name; two images ``a/x.jpg`` and
    ``b/x.jpg`` (COCO file names with folders) would share labels."""
    from bana_mm.det.pseudo_label_data import dataset_fingerprint

    class _Images:
        ann_file = str(tmp_path / 'instances.json')
        data_root = str(tmp_path)

        def __init__(self, paths):
            self.paths = paths

        def __len__(self):
            return len(self.paths)

        def get_data_info(self, i):
            return dict(img_path=self.paths[i])

    ok = dataset_fingerprint(_Images(['r/a/x.jpg', 'r/a/y.jpg']))
    assert ok['images'] == 2
    with pytest.raises(ValueError) as info:
        dataset_fingerprint(_Images(['r/a/x.jpg', 'r/b/x.jpg', 'r/c/z.jpg']))
    for word in (_Images.ann_file, 'r/a/x.jpg and r/b/x.jpg'):
        assert word in str(info.value)
