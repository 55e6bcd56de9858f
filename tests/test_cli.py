"""``--split`` as a person guesses it: a name or a path."""
import os
import os.path as osp

import pytest

from bana_mm.utils.cli import resolve_split
from conftest import SHARED_DATA


def _touch(root, rel):
    path = osp.join(root, rel)
    os.makedirs(osp.dirname(path), exist_ok=True)
    open(path, 'w').close()
    return path


@pytest.fixture
def voc_root(tmp_path):
    root = str(tmp_path / 'voc')
    _touch(root, 'ImageSets/Segmentation/train.txt')
    _touch(root, 'ImageSets/Segmentation/train_aug.txt')
    _touch(root, 'ImageSets/Main/val.txt')
    return root


def test_name_resolves_to_segmentation_list(voc_root):
    assert resolve_split(voc_root, 'train') == \
        'ImageSets/Segmentation/train.txt'
    assert resolve_split(voc_root, 'train.txt') == \
        'ImageSets/Segmentation/train.txt'
    assert resolve_split(voc_root, 'train_aug') == \
        'ImageSets/Segmentation/train_aug.txt'


def test_name_falls_back_to_main_list(voc_root):
    assert resolve_split(voc_root, 'val') == 'ImageSets/Main/val.txt'


def test_relative_path_is_kept(voc_root):
    rel = 'ImageSets/Main/val.txt'
    assert resolve_split(voc_root, rel) == rel


def test_absolute_and_working_directory_paths(voc_root, tmp_path, monkeypatch):
    other = _touch(str(tmp_path), 'lists/mine.txt')
    assert resolve_split(voc_root, other) == other
    monkeypatch.chdir(tmp_path)
    assert resolve_split(voc_root, 'lists/mine.txt') == other


def test_none_keeps_the_config_split(voc_root):
    assert resolve_split(voc_root, None) is None


def test_unknown_split_names_every_path_tried(voc_root):
    with pytest.raises(FileNotFoundError) as err:
        resolve_split(voc_root, 'test')
    message = str(err.value)
    assert voc_root in message
    assert 'ImageSets/Segmentation/test.txt' in message
    assert 'ImageSets/Main/test.txt' in message
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        resolve_split(voc_root, '/no/such/nope.txt')


def test_coco_names_on_the_shared_data():
    root = osp.join(SHARED_DATA, 'coco128_coco')
    if not osp.isdir(root):
        pytest.skip('../shared/data/coco128_coco is not available')
    assert resolve_split(root, 'train') == 'annotations/instances_train.json'
    assert resolve_split(root, 'voc20_val') == \
        'annotations/instances_voc20_val.json'
