"""Stage 2 stops instead of writing wrong labels (issue 10 items 1, 2, 9,
10, 11): strict checkpoint loading, resume only for the same run
(fingerprint.json), an unwritable out-dir found before computing, a non-zero
exit code when images failed, workers that die with their parent."""
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from test_stage2_tool import (CLASSES, CONFIG, TOOL, TRAIN, VAL, _digests,
                              _ids, _run, make_checkpoint)

from conftest import REPO

SEG_TINY = osp.join(REPO, 'configs', 'bana', 'deeplabv1_nal_tiny.py')
FULL = osp.join(REPO, 'configs', 'bana', 'bap_vgg16_voc.py')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    return make_checkpoint(str(tmp_path_factory.mktemp('ckpt') / 'stage1.pth'))


def _args(root, ckpt, out, *extra):
    return [
        CONFIG, ckpt, '--data-root', root, '--out-dir', out, '--split', VAL,
        '--workers', '0', '--num-vis', '0', '--no-eval', *extra
    ]


def _build(config: str, scope: str, **model_cfg):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    import bana_mm.det  # noqa: F401
    import bana_mm.seg  # noqa: F401
    cfg = Config.fromfile(config)
    cfg.model.update(model_cfg)
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg.model)


def _assert_rejected(root, ckpt, out, *words):
    with pytest.raises(ValueError) as info:
        _run(_args(root, ckpt, out))
    message = str(info.value)
    for word in (ckpt, *words):
        assert word in message, (word, message)
    assert not osp.isdir(osp.join(out, 'Ycrf')), 'labels were written'


# -- item 1: strict checkpoint loading -------------------------------------


def test_empty_state_dict_is_an_error(synthetic_root, tmp_path):
    ckpt = str(tmp_path / 'empty.pth')
    torch.save(
        dict(state_dict={}, meta=dict(dataset_meta=dict(classes=CLASSES))),
        ckpt)
    _assert_rejected(synthetic_root, ckpt, str(tmp_path / 'out'), 'no weights',
                     'missing keys: ', 'backbone.conv1_1.weight',
                     '(96 in all)')


def test_stage3_checkpoint_without_meta_is_an_error(synthetic_root, tmp_path):
    model = _build(SEG_TINY, 'mmseg')
    ckpt = str(tmp_path / 'deeplab.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    _assert_rejected(synthetic_root, ckpt, str(tmp_path / 'out'),
                     'unexpected keys', 'decode_head.', 'missing keys',
                     'head.classifier.weight', 'stage-3')


def test_full_width_weights_for_the_tiny_config_are_an_error(
        synthetic_root, tmp_path):
    from mmengine.config import Config
    full = Config.fromfile(FULL).model
    model = _build(
        FULL,
        'mmdet',
        head=dict(full.head, num_classes=5),
        backbone=dict(full.backbone, init_cfg=None))
    ckpt = str(tmp_path / 'full.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=CLASSES))), ckpt)
    _assert_rejected(
        synthetic_root, ckpt, str(tmp_path / 'out'), 'shape mismatch',
        'backbone.conv1_1.weight [64, 3, 3, 3]'
        ' vs [16, 3, 3, 3]')


def test_class_list_of_another_model_names_the_cause(checkpoint, tmp_path):
    """A stage-1 classifier whose dataset_meta lists 'background' too (the
    stage-3 convention): no "21 rows but 21 classes" contradiction."""
    from mmengine.config import Config

    from bana_mm.apis.stage2 import load_stage1_model
    from bana_mm.det.pseudo_label_data import classifier_for
    ckpt = str(tmp_path / 'meta6.pth')
    state = torch.load(checkpoint, weights_only=True)
    state['meta']['dataset_meta']['classes'] = ('background', *CLASSES)
    torch.save(state, ckpt)
    cfg = Config.fromfile(CONFIG)
    with pytest.raises(
            ValueError,
            match=r'meta6\.pth: its dataset_meta '
            r'lists 6 classes but its classifier has 5 class '
            r'rows.*not a stage-1 BAP checkpoint'):
        load_stage1_model(cfg, ckpt, 'cpu')
    model, _ = load_stage1_model(cfg, checkpoint, 'cpu')
    with pytest.raises(
            ValueError,
            match='5 class rows .* list 6 classes .*'
            'stage-1 BAP checkpoint'):
        classifier_for(model, CLASSES, ('background', *CLASSES))


def test_partial_load_needs_the_flag_and_warns(checkpoint, tmp_path):
    from mmengine.config import Config

    from bana_mm.apis.stage2 import load_stage1_model
    state = torch.load(checkpoint, weights_only=True)
    weights = state['state_dict']['head.classifier.weight']
    del state['state_dict']['head.classifier.weight']
    state['state_dict']['head.extra'] = torch.zeros(3)
    ckpt = str(tmp_path / 'partial.pth')
    torch.save(state, ckpt)
    cfg = Config.fromfile(CONFIG)
    with pytest.raises(
            ValueError,
            match='missing keys: head.classifier.'
            'weight; unexpected keys: head.extra'):
        load_stage1_model(cfg, ckpt, 'cpu')
    with pytest.warns(
            UserWarning,
            match='PARTIAL CHECKPOINT LOAD.*missing '
            'keys: head.classifier.weight'):
        model, _ = load_stage1_model(cfg, ckpt, 'cpu', allow_partial=True)
    full = torch.load(checkpoint, weights_only=True)['state_dict']
    torch.testing.assert_close(model.backbone.conv1_1.weight,
                               full['backbone.conv1_1.weight'])
    assert not torch.equal(model.head.classifier.weight, weights)


# -- item 2: resume only the same run ---------------------------------------


@pytest.fixture()
def other_checkpoint(checkpoint, tmp_path) -> str:
    state = torch.load(checkpoint, weights_only=True)
    torch.manual_seed(1)
    weights = state['state_dict']['head.classifier.weight']
    state['state_dict']['head.classifier.weight'] = \
        torch.randn_like(weights)
    path = str(tmp_path / 'retrained.pth')
    torch.save(state, path)
    return path


def test_rerun_with_another_checkpoint_needs_overwrite(synthetic_root,
                                                       checkpoint,
                                                       other_checkpoint,
                                                       tmp_path):
    from bana_mm.apis.stage2 import StaleLabelsError
    from bana_mm.det.pseudo_label_data import file_sha256
    out = str(tmp_path / 'out')
    first = _run(_args(synthetic_root, checkpoint, out, '--num-vis', '1'))
    assert first['written'] == 6
    before = _digests(out)
    with open(osp.join(out, 'fingerprint.json')) as f:
        record = json.load(f)
    assert record['model']['sha256'] == file_sha256(checkpoint)
    assert record['dataset']['images'] == 6
    assert record['labels']['threshold'] == 0.99

    with pytest.raises(StaleLabelsError, match='--overwrite') as info:
        _run(_args(synthetic_root, other_checkpoint, out))
    assert 'model' in str(info.value)
    assert _digests(out) == before  # nothing touched
    with pytest.raises(StaleLabelsError, match='labels'):
        _run(_args(synthetic_root, checkpoint, out, '--no-u0'))

    fresh = _run(_args(synthetic_root, other_checkpoint, out, '--overwrite'))
    assert fresh['written'] == 6 and fresh['skipped'] == 0
    assert _digests(out) != before
    assert not osp.isdir(osp.join(out, 'vis'))  # the old sheets went too
    with open(osp.join(out, 'fingerprint.json')) as f:
        assert json.load(f)['model']['sha256'] == \
            file_sha256(other_checkpoint)
    again = _run(_args(synthetic_root, other_checkpoint, out))
    assert again['written'] == 0 and again['skipped'] == 6


def test_labels_without_fingerprint_are_not_resumed(synthetic_root, checkpoint,
                                                    tmp_path):
    from bana_mm.apis.stage2 import StaleLabelsError
    out = str(tmp_path / 'out')
    os.makedirs(osp.join(out, 'Ycrf'))
    open(osp.join(out, 'Ycrf', 'old.png'), 'wb').close()
    with pytest.raises(StaleLabelsError, match='unknown run.*--overwrite'):
        _run(_args(synthetic_root, checkpoint, out))


# -- item 9: unwritable out-dir ---------------------------------------------


def test_unwritable_out_dir_is_found_before_computing(synthetic_root,
                                                      checkpoint, tmp_path,
                                                      monkeypatch):
    from bana_mm.det import pseudo_label_runner

    def never(*args):
        raise AssertionError('an image was computed')

    monkeypatch.setattr(pseudo_label_runner, 'network_features', never)
    out = str(tmp_path / 'out')
    os.makedirs(out)
    open(osp.join(out, 'Yret'), 'w').close()  # a file where a folder goes
    with pytest.raises(OSError, match=f'cannot write to {out}/Yret'):
        _run(_args(synthetic_root, checkpoint, out))
    blocker = str(tmp_path / 'a_file')
    open(blocker, 'w').close()
    with pytest.raises(OSError, match=f'cannot write to {blocker}/out'):
        _run(_args(synthetic_root, checkpoint, osp.join(blocker, 'out')))


@pytest.mark.skipif(os.geteuid() == 0, reason='root can write anywhere')
def test_read_only_out_dir_is_found_before_computing(synthetic_root,
                                                     checkpoint, tmp_path):
    out = tmp_path / 'ro'
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=f'cannot write to {out}'):
            _run(_args(synthetic_root, checkpoint, str(out)))
    finally:
        out.chmod(0o755)


# -- item 10: failures give a non-zero exit code ----------------------------


@pytest.fixture()
def broken_root(synthetic_root, tmp_path) -> str:
    """The synthetic dataset with one unreadable val image."""
    root = str(tmp_path / 'data')
    shutil.copytree(synthetic_root, root)
    for split in (VAL, TRAIN):
        bad = _ids(root, split)[1]
        with open(osp.join(root, 'JPEGImages', f'{bad}.jpg'), 'wb') as f:
            f.write(b'not a jpeg')
    return root


def test_failed_images_exit_with_code_3(broken_root, checkpoint, tmp_path):
    out = str(tmp_path / 'out')
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run(
        [sys.executable, TOOL, *_args(broken_root, checkpoint, out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    assert result.returncode == 3, result.stderr[-2000:]
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert '1 of 6 images failed; exit code 3' in lines[-1]
    assert any('1 of 6 images FAILED' in line for line in lines)
    assert len(os.listdir(osp.join(out, 'Ycrf'))) == 5


def test_pipeline_raises_after_summary_when_stage2_failed(
        broken_root, checkpoint, tmp_path):
    from bana_mm.apis.common import update_summary
    from bana_mm.apis.pipeline import run_pipeline
    work = str(tmp_path / 'work')
    os.makedirs(work)
    summary_path = osp.join(work, 'summary.json')
    update_summary(summary_path, dict(stage1=dict(checkpoint=checkpoint)))
    with pytest.raises(RuntimeError, match='stage 2: 1 of 16 images failed'):
        run_pipeline(work, broken_root, stages=[2], workers=0)
    with open(summary_path) as f:
        stage2 = json.load(f)['stage2']
    assert stage2['failed'] == 1 and stage2['written'] == 15


# -- item 11: workers die with their parent ---------------------------------


def _children(pid: int) -> set:
    found = set()
    for task in os.listdir(f'/proc/{pid}/task'):
        with open(f'/proc/{pid}/task/{task}/children') as f:
            found |= {int(c) for c in f.read().split()}
    return found


def _cmdline(pid: int) -> str:
    with open(f'/proc/{pid}/cmdline', 'rb') as f:
        return f.read().replace(b'\0', b' ').decode()


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ('Z', 'X')


@pytest.mark.skipif(not osp.isdir('/proc/self/task'), reason='needs /proc')
def test_kill_9_leaves_no_worker_behind(synthetic_root, checkpoint, tmp_path):
    """gen_pseudo_labels.py killed half-way: no child (CRF worker, resource
    tracker) survives it."""
    out = str(tmp_path / 'out')
    env = dict(os.environ, PYTHONPATH=REPO)
    args = _args(synthetic_root, checkpoint, out)
    args[args.index(VAL)] = TRAIN
    args[args.index('--workers') + 1] = '1'
    proc = subprocess.Popen([sys.executable, TOOL, *args],
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ycrf = osp.join(out, 'Ycrf')
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if osp.isdir(ycrf) and any(
                n.endswith('.png') for n in os.listdir(ycrf)):
            break
        time.sleep(0.05)
    assert proc.poll() is None, 'the tool ended before it could be killed'
    children = _children(proc.pid)
    workers = [c for c in children if 'spawn_main' in _cmdline(c)]
    assert len(workers) == 1, 'no CRF worker found'
    _kill_and_assert_no_survivor(proc, children)


def _kill_and_assert_no_survivor(proc, children) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(map(_alive, children)):
        time.sleep(0.2)
    survivors = [c for c in children if _alive(c)]
    for pid in survivors:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f'processes outlived their parent: {survivors}'


POOL_SCRIPT = """
import sys, time
from bana_mm.utils.worker_pool import WorkerPool
pool = WorkerPool(1)
pool.submit(abs, -1, None)
assert pool.drain() == [(None, 1)]
print('idle', flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not osp.isdir('/proc/self/task'), reason='needs /proc')
def test_idle_worker_exits_with_its_parent():
    """A worker waiting for its next job (it holds its own end of the job
    queue, so it never sees EOF) and the resource tracker."""
    proc = subprocess.Popen([sys.executable, '-c', POOL_SCRIPT],
                            env=dict(os.environ, PYTHONPATH=REPO),
                            stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == 'idle'
    children = _children(proc.pid)
    assert any('spawn_main' in _cmdline(c) for c in children)
    _kill_and_assert_no_survivor(proc, children)


FALLBACK_SCRIPT = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, '-c', '''
import os, sys, time
sys.platform = "other"  # no prctl: the watching thread alone
from bana_mm.utils.worker_pool import _die_with_parent
_die_with_parent(os.getppid(), interval=0.1)
print("ready", flush=True)
time.sleep(60)
'''], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
assert child.stdout.readline().strip() == 'ready'
print(child.pid, flush=True)
os._exit(0)
"""


def test_parent_watch_without_prctl():
    """The portable fallback: a thread that sees the parent pid change."""
    out = subprocess.run([sys.executable, '-c', FALLBACK_SCRIPT],
                         env=dict(os.environ, PYTHONPATH=REPO),
                         capture_output=True,
                         text=True,
                         timeout=120)
    child = int(out.stdout.split()[-1])
    deadline = time.time() + 10
    while time.time() < deadline and _alive(child):
        time.sleep(0.1)
    alive = _alive(child)
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, 'the child outlived its parent'
