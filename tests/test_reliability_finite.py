"""Issue 20 class 4: non-finite numbers stop the run. A diverged training
stops at the first NaN loss (naming the iteration and the last good
checkpoint) and never saves NaN weights; stage 2 refuses NaN weights and
fails an image whose maps are not finite, naming it."""
import json
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from test_stage1_training import TINY, _data_options
from test_stage2_tool import CONFIG, VAL, _run, make_checkpoint

from bana_mm.core.finite import NonFiniteError, check_finite, non_finite


@HOOKS.register_module(force=True)
class PoisonAfterIterHook(Hook):
    """Test only: after iteration ``at`` (its checkpoint saved), set the
    first entry of the state-dict tensor ``key`` to NaN."""

    priority = 'LOWEST'

    def __init__(self, at: int, key: str) -> None:
        self.at, self.key = at, key

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.at:
            runner.model.state_dict()[self.key].view(-1)[0] = float('nan')


def _train(synthetic_root, work_dir, poison_key, poison_at=4):
    from mmengine.runner import Runner

    from tools import train
    args = train.parse_args([
        TINY, '--work-dir', work_dir, '--cfg-options',
        *_data_options(synthetic_root), 'train_cfg.max_iters=8',
        'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=2',
        'default_hooks.checkpoint.max_keep_ckpts=10', 'randomness.seed=0',
        'train_dataloader.num_workers=0', 'train_dataloader.batch_size=2',
        f'experiment_name=finite_{uuid.uuid4().hex[:8]}'
    ])
    cfg = train.build_config(args)
    cfg.custom_hooks = [
        dict(type='PoisonAfterIterHook', at=poison_at, key=poison_key)
    ]
    Runner.from_cfg(cfg).train()


def test_non_finite_helpers():
    named = dict(
        a=torch.tensor([1.0, float('nan'), float('inf')]),
        b=np.zeros(3),
        c=torch.arange(3),
        d=float('-inf'))
    assert non_finite(named) == [
        'a (1 NaN, 1 inf of 3 values)', 'd (1 inf of 1 values)'
    ]
    with pytest.raises(NonFiniteError, match='here: non-finite values in a'):
        check_finite(named, 'here')
    check_finite(dict(b=named['b'], c=named['c']), 'fine')


def test_training_stops_at_the_first_non_finite_loss(synthetic_root, tmp_path):
    """A weight turned NaN after iteration 4: the loss of iteration 5 is
    NaN; training stops there (before: rc 0 and NaN checkpoints)."""
    from bana_mm.engine import NonFiniteLossError
    work_dir = str(tmp_path / 'work')
    with pytest.raises(NonFiniteLossError) as info:
        _train(synthetic_root, work_dir, 'head.classifier.weight')
    message = str(info.value)
    for word in ('iteration 5', 'loss', 'NaN',
                 osp.join(work_dir, 'iter_4.pth')):
        assert word in message, (word, message)
    assert not osp.exists(osp.join(work_dir, 'iter_6.pth'))
    state = torch.load(
        osp.join(work_dir, 'iter_4.pth'), map_location='cpu')['state_dict']
    check_finite(state, 'the last good checkpoint')


def test_non_finite_weights_are_never_saved(synthetic_root, tmp_path):
    """A BatchNorm running mean turned NaN does not change the training
    loss (batch statistics are used) but would be saved: refused."""
    from bana_mm.engine import NonFiniteLossError
    work_dir = str(tmp_path / 'work')
    key = 'backbone.conv1_1_norm.running_mean'
    with pytest.raises(NonFiniteLossError) as info:
        _train(synthetic_root, work_dir, key, poison_at=3)
    message = str(info.value)
    for word in ('checkpoint of iteration 4', key, 'not saved',
                 osp.join(work_dir, 'iter_2.pth')):
        assert word in message, (word, message)
    assert not osp.exists(osp.join(work_dir, 'iter_4.pth'))


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    return make_checkpoint(str(tmp_path_factory.mktemp('ckpt') / 'ok.pth'))


def _args(root, ckpt, out):
    return [
        CONFIG, ckpt, '--data-root', root, '--out-dir', out, '--split', VAL,
        '--workers', '0', '--num-vis', '0', '--no-eval'
    ]


def test_stage2_refuses_a_checkpoint_with_nan_weights(synthetic_root,
                                                      checkpoint, tmp_path):
    """Before: every label all background, rc 0."""
    state = torch.load(checkpoint, map_location='cpu')
    state['state_dict']['head.classifier.weight'][2, 0] = float('nan')
    bad = str(tmp_path / 'diverged.pth')
    torch.save(state, bad)
    out = str(tmp_path / 'out')
    with pytest.raises(NonFiniteError) as info:
        _run(_args(synthetic_root, bad, out))
    for word in (bad, 'head.classifier.weight', '1 NaN'):
        assert word in str(info.value)
    assert not osp.isdir(osp.join(out, 'Ycrf'))


def test_non_finite_maps_fail_naming_the_image(synthetic_root, checkpoint,
                                               tmp_path, monkeypatch):
    """An image whose features hold NaN is a failed image (named, exit 3),
    not an all-background label; the others are written."""
    from bana_mm.det import pseudo_label_runner
    from bana_mm.utils.io import read_split
    from tools.gen_pseudo_labels import exit_code
    victim = read_split(osp.join(synthetic_root, VAL))[1]
    real = pseudo_label_runner.network_features

    def features(model, item, *args):
        feat, *rest = real(model, item, *args)
        if victim in item['data_samples'].img_path:
            feat[0, 0, 0, 0] = float('nan')
        return (feat, *rest)

    monkeypatch.setattr(pseudo_label_runner, 'network_features', features)
    out = str(tmp_path / 'out')
    run = _run(_args(synthetic_root, checkpoint, out))
    assert exit_code(run) == 3
    assert [f['image'].split()[0] for f in run['failed']] == [victim]
    assert 'non-finite values in features' in run['failed'][0]['error']
    with open(osp.join(out, 'run.json')) as f:
        assert json.load(f)['failed'] == run['failed']
    assert not osp.isfile(osp.join(out, 'Ycrf', f'{victim}.png'))
    assert run['written'] == run['images'] - 1
