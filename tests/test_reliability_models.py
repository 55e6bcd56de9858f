"""Issue 20 class 5: the wrong model is an error in every tool.
``tools/test.py`` applies stage 2's strict checkpoint check (opt-out
``--allow-partial-checkpoint``); a top-level ``--cfg-options`` key that
nothing reads gets a warning naming it."""
import os.path as osp

import pytest
import torch
from test_box_datasets import captured_log, warnings_of
from test_stage2_tool import CONFIG as STAGE1_TINY
from test_stage2_tool import make_checkpoint

from conftest import REPO

STAGE3_TINY = osp.join(REPO, 'configs', 'bana', 'deeplabv1_nal_tiny.py')


@pytest.fixture(scope='module')
def stage1_checkpoint(tmp_path_factory) -> str:
    return make_checkpoint(str(tmp_path_factory.mktemp('ckpt') / 's1.pth'))


def _data(root: str) -> list:
    return [
        f'{k}.dataset.data_root={root}/'
        for k in ('val_dataloader', 'test_dataloader')
    ]


def test_tools_test_refuses_a_stage1_checkpoint_on_a_stage3_config(
        stage1_checkpoint, synthetic_root, tmp_path):
    """Before: "do not match exactly" in the log, then an mIoU, rc 0."""
    from tools import test
    with captured_log() as records, pytest.raises(ValueError) as info:
        test.main([
            STAGE3_TINY, stage1_checkpoint, '--work-dir',
            str(tmp_path), '--cfg-options', 'load_form=x.pth',
            *_data(synthetic_root)
        ])
    message = str(info.value)
    for word in (stage1_checkpoint, STAGE3_TINY, 'missing keys', 'decode_head',
                 'stage-1 BAP classifier', '--allow-partial-checkpoint'):
        assert word in message, (word, message)
    warned = [m for m in warnings_of(records) if '--cfg-options' in m]
    assert len(warned) == 1 and 'load_form' in warned[0], warned
    assert 'data_root' not in warned[0]


def test_tools_test_refuses_weights_of_another_shape(stage1_checkpoint,
                                                     synthetic_root, tmp_path):
    """A classifier of another width is an error; the opt-out flag
    evaluates anyway, with a warning listing the key."""
    from tools import test
    state = torch.load(stage1_checkpoint, map_location='cpu')
    weight = state['state_dict']['head.classifier.weight']
    state['state_dict']['head.classifier.weight'] = weight[:, :128].clone()
    other = str(tmp_path / 'narrow.pth')
    torch.save(state, other)
    args = [
        STAGE1_TINY, other, '--work-dir',
        str(tmp_path), '--cfg-options', *_data(synthetic_root)
    ]
    with pytest.raises(ValueError) as info:
        test.main(args)
    for word in (other, 'shape mismatch', 'head.classifier.weight',
                 '[6, 128, 1, 1] vs [6, 256, 1, 1]'):
        assert word in str(info.value), (word, str(info.value))
    with pytest.warns(UserWarning, match='PARTIAL CHECKPOINT LOAD'):
        metrics = test.main(args[:2] + ['--allow-partial-checkpoint'] +
                            args[2:])
    assert metrics


def test_unused_top_level_cfg_option_warns():
    from mmengine.config import Config

    from bana_mm.utils.cli import merge_cfg_options
    cfg = Config.fromfile(STAGE1_TINY)
    with captured_log() as records:
        merge_cfg_options(
            cfg, {
                'load_form': 'x.pth',
                'lod_level': 'DEBUG',
                'load_from': 'y.pth',
                'model.head.num_classes': 3,
                'crf_at_test': True,
                'default_hooks.finite_loss': None
            })
    assert cfg.load_from == 'y.pth' and cfg.model.head.num_classes == 3
    warned = [m for m in warnings_of(records) if '--cfg-options' in m]
    assert len(warned) == 1
    assert 'load_form, lod_level (' in warned[0]
