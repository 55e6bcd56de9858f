"""Every shipped config loads with mmengine and builds its model in its own
registry scope (mmdet: stage 1 and Mask R-CNN; mmseg: DeepLab), without
pretrained weights or network access; and the config locator finds them."""
import copy
import glob
import importlib
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings

from bana_mm.utils.config_path import config_dirs, config_file, list_configs
from conftest import REPO

CONFIG_ROOT = osp.join(REPO, 'configs')
CONFIGS = sorted(
    osp.relpath(p, CONFIG_ROOT) for pattern in ('bana/*.py', 'mdh/*.py')
    for p in glob.glob(osp.join(CONFIG_ROOT, pattern)))


def drop_pretrained(node):
    """Set every ``init_cfg`` that names a checkpoint and every
    ``pretrained`` to None, in place (no download, no file needed)."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and 'checkpoint' in init_cfg:
            node['init_cfg'] = None
        if node.get('pretrained') is not None:
            node['pretrained'] = None
        for value in node.values():
            drop_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            drop_pretrained(value)


def test_every_config_folder_is_covered():
    assert len(CONFIGS) >= 20
    assert not any('_base_' in name for name in CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_its_model(name):
    cfg = Config.fromfile(osp.join(CONFIG_ROOT, name))
    scope = cfg.default_scope
    assert scope in ('mmdet', 'mmseg'), name
    import_modules_from_strings(**cfg.custom_imports)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model_cfg = copy.deepcopy(cfg.model)
    drop_pretrained(model_cfg)
    # the config's scope for the build only: no scope leaks into later tests
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(model_cfg)
    assert isinstance(model, torch.nn.Module)
    assert type(model) is registry.get(cfg.model.type)
    # the head the config names is the head that was built
    for head_key in ('head', 'decode_head'):
        if head_key in cfg.model:
            assert type(getattr(model, head_key)).__name__ == \
                cfg.model[head_key].type.split('.')[-1]
    if 'roi_head' in cfg.model:
        assert type(model.roi_head.mask_head).__name__ == \
            cfg.model.roi_head.mask_head.type
    assert sum(p.numel() for p in model.parameters()) > 0


def test_config_file_finds_checkout_configs():
    assert config_dirs()[0] == CONFIG_ROOT
    path = config_file('bana/deeplabv1_nal_tiny.py')
    assert path == osp.join(CONFIG_ROOT, 'bana', 'deeplabv1_nal_tiny.py')
    assert config_file('configs/bana/deeplabv1_nal_tiny.py') == path
    assert config_file(path) == path
    assert 'bana/bap_vgg16_tiny.py' in list_configs('bana')
    assert all('_base_' not in n for n in list_configs())
    with pytest.raises(FileNotFoundError, match='bana/nope.py'):
        config_file('bana/nope.py')


def test_metafiles_list_every_config_once():
    """model-index.yml -> metafiles: one entry per config file, figures in
    percent (0-100)."""
    import yaml
    with open(osp.join(REPO, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    listed = []
    for rel in index['Import']:
        with open(osp.join(REPO, rel)) as f:
            meta = yaml.safe_load(f)
        collections = {c['Name'] for c in meta['Collections']}
        for model in meta['Models']:
            assert model['In Collection'] in collections, model['Name']
            assert osp.isfile(osp.join(REPO, model['Config'])), model
            for block in [model.get('Paper', {})] + model.get('Results', []):
                for value in block.get('Metrics', {}).values():
                    assert 0 <= value <= 100, (model['Name'], block)
            listed.append(osp.relpath(model['Config'], 'configs'))
    assert sorted(listed) == CONFIGS


def test_train_tool_takes_a_shipped_config_name(tmp_path):
    from tools import train
    args = train.parse_args(
        ['bana/bap_vgg16_tiny.py', '--work-dir',
         str(tmp_path)])
    cfg = train.build_config(args)
    assert cfg.filename == osp.join(CONFIG_ROOT, 'bana', 'bap_vgg16_tiny.py')
    assert cfg.work_dir == str(tmp_path)
    with pytest.raises(SystemExit, match='bana/nope.py'):
        train.build_config(train.parse_args(['bana/nope.py']))
