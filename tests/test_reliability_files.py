"""Issue 10: unreadable checkpoints are named (item 8), atomic outputs get
the permissions ``open`` would give (item 12), image sizes as decoded.

Small hand-made files only; see docs/reliability.md for the whole table.
"""
import argparse
import os
import stat
import traceback
from contextlib import contextmanager

import mmcv
import numpy as np
import pytest
import torch
from PIL import Image

import bana_mm  # noqa: F401  (routes mmengine's checkpoint loading)
from bana_mm.utils.checkpoint import CheckpointReadError, read_checkpoint
from bana_mm.utils.io import (atomic_open, atomic_write_text, image_size,
                              read_split)
from bana_mm.utils.label_io import write_label_png

TINY = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs',
    'bana', 'bap_vgg16_tiny.py')


# ------------------------------------------------------------ checkpoints
@pytest.fixture
def bad_checkpoints(tmp_path):
    """name -> path of files that are not readable checkpoints."""
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.arange(3000.)}}, good)
    data = good.read_bytes()
    files = {
        'empty': b'',
        'truncated': data[:len(data) // 2],
        'text': b'hello world\n',
        'json': b'{"state_dict": 1}\n',
        'random':
        bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8)),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f'{name}.pth'
        paths[name].write_bytes(content)
    paths['foreign_object'] = tmp_path / 'foreign_object.pth'
    torch.save({'meta': argparse.Namespace(a=1)}, paths['foreign_object'])
    return {k: str(v) for k, v in paths.items()}


def _check_message(err: BaseException, path: str) -> None:
    text = ''.join(
        traceback.format_exception(type(err), err, err.__traceback__))
    assert f'{path} is not a readable checkpoint' in str(err)
    assert 'weights_only' not in text  # never advise unsafe loading


LOADERS = {
    'read_checkpoint':
    lambda path: read_checkpoint(path),
    # Runner.load_checkpoint (load_from, resume, tools/test.py) and
    # init_cfg pretrained weights
    'mmengine_load':
    lambda path: __import__(
        'mmengine.runner.checkpoint', fromlist=['_load_checkpoint']
    )._load_checkpoint(path, map_location='cpu'),
    # stage 2 (load_stage1_model)
    'load_into_model':
    lambda path: __import__('mmengine.runner', fromlist=['load_checkpoint']).
    load_checkpoint(torch.nn.Linear(2, 2), path, map_location='cpu'),
}


@pytest.mark.parametrize('loader', sorted(LOADERS))
@pytest.mark.parametrize(
    'name', ['empty', 'truncated', 'text', 'json', 'random', 'foreign_object'])
def test_unreadable_checkpoint_is_named(bad_checkpoints, loader, name):
    path = bad_checkpoints[name]
    with pytest.raises(CheckpointReadError) as err:
        LOADERS[loader](path)
    _check_message(err.value, path)


def test_checkpoint_errors_keep_a_short_cause(bad_checkpoints):
    with pytest.raises(CheckpointReadError, match='empty'):
        read_checkpoint(bad_checkpoints['empty'])
    with pytest.raises(CheckpointReadError, match='GLOBAL argparse.Namespace'):
        read_checkpoint(bad_checkpoints['foreign_object'])
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        read_checkpoint(
            os.path.join(
                os.path.dirname(bad_checkpoints['empty']), 'nope.pth'))


def test_good_checkpoint_still_loads(tmp_path):
    path = str(tmp_path / 'ok.pth')
    torch.save(
        {'state_dict': {
            'weight': torch.ones(2, 2),
            'bias': torch.zeros(2)
        }}, path)
    model = torch.nn.Linear(2, 2)
    from mmengine.runner import load_checkpoint
    load_checkpoint(model, path, map_location='cpu', strict=True)
    assert torch.equal(model.weight, torch.ones(2, 2))


def test_tools_test_names_a_truncated_checkpoint(bad_checkpoints,
                                                 synthetic_root, tmp_path):
    from tools import test
    path = bad_checkpoints['truncated']
    with pytest.raises(CheckpointReadError) as err:
        test.main([
            TINY, path, '--work-dir',
            str(tmp_path), '--cfg-options', *[
                f'{k}.dataset.data_root={synthetic_root}/'
                for k in ('val_dataloader', 'test_dataloader')
            ]
        ])
    _check_message(err.value, path)


# ----------------------------------------------------------- permissions
@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize('mask,expected', [(0o022, 0o644), (0o027, 0o640),
                                           (0o002, 0o664)])
def test_atomic_outputs_respect_the_umask(tmp_path, mask, expected):
    """Issue 10.12: mkstemp's 0600 made shared dataset folders unreadable."""
    with umask(mask):
        atomic_write_text(str(tmp_path / 'run.json'), '{}')
        write_label_png(
            str(tmp_path / 'Ycrf' / 'a.png'), np.zeros((3, 4), np.uint8))
        with open(tmp_path / 'plain.txt', 'w') as f:  # the reference
            f.write('x')
    assert _mode(tmp_path / 'plain.txt') == expected
    assert _mode(tmp_path / 'run.json') == expected
    assert _mode(tmp_path / 'Ycrf' / 'a.png') == expected


def test_atomic_rewrite_keeps_the_existing_mode(tmp_path):
    path = tmp_path / 'summary.json'
    path.write_text('old')
    os.chmod(path, 0o600)
    with umask(0o022):
        with atomic_open(str(path)) as f:
            f.write(b'new')
    assert path.read_text() == 'new' and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ['summary.json']


# ------------------------------------------------------------ split files
def test_read_split_first_token_and_duplicates(tmp_path):
    path = tmp_path / 'split.txt'
    path.write_text('a 1\n\nb -1\n a\nc\n')
    assert read_split(str(path)) == ['a', 'b', 'c']
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        read_split(str(tmp_path / 'nope.txt'))


# ------------------------------------------------------------ image size
@pytest.mark.parametrize('orientation', [1, 3, 6, 8])
def test_image_size_is_the_decoded_size(tmp_path, orientation):
    """The header size, transposed for EXIF rotations as OpenCV decodes."""
    path = str(tmp_path / 'rot.jpg')
    image = Image.fromarray(np.zeros((30, 50, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes())
    height, width = mmcv.imread(path).shape[:2]
    assert image_size(path) == (width, height)
    assert (width, height) == ((30, 50) if orientation in (6, 8) else (50, 30))
    (tmp_path / 'bad.jpg').write_bytes(b'')
    assert image_size(str(tmp_path / 'bad.jpg')) is None


def test_coco_metric_matches_categories_by_name(tmp_path):
    """mmdet's CocoMetric maps label i to the i-th json category in json
    order; NamedCocoMetric maps it to the category named classes[i]."""
    import json

    from mmdet.evaluation import CocoMetric

    from bana_mm.det import NamedCocoMetric
    ann = dict(
        images=[dict(id=1, file_name='a.jpg', width=8, height=8)],
        categories=[dict(id=7, name='giraffe'),
                    dict(id=3, name='chair')],
        annotations=[
            dict(
                id=1,
                image_id=1,
                category_id=7,
                iscrowd=0,
                bbox=[0, 0, 4, 4],
                area=16)
        ])
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(ann))
    classes = ('chair', 'giraffe')
    ids = {}
    for cls in (CocoMetric, NamedCocoMetric):
        metric = cls(ann_file=str(path))
        metric.dataset_meta = dict(classes=classes)
        metric.cat_ids = metric._coco_api.get_cat_ids(cat_names=classes)
        ids[cls.__name__] = list(metric.cat_ids)
    assert ids['CocoMetric'] == [7, 3]  # label 0 ('chair') -> giraffe
    assert ids['NamedCocoMetric'] == [3, 7]
    metric = NamedCocoMetric(ann_file=str(path))
    metric.dataset_meta = dict(classes=('chair', 'zebra'))
    with pytest.raises(
            ValueError, match=r"ann.json has no category named "
            r"\['zebra'\]"):
        metric.cat_ids = metric._coco_api.get_cat_ids(
            cat_names=('chair', 'zebra'))
