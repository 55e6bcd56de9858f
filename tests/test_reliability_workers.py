"""Issue 20 class 7: a worker that dies (killed, out of memory) is named
by the image it was working on; the other images are still done."""
import errno
import json
import os
import os.path as osp
import signal
import time

import pytest
from test_stage2_tool import CONFIG, VAL, _run, make_checkpoint

from bana_mm.utils.io import read_split
from bana_mm.utils.label_io import write_label_png
from bana_mm.utils.worker_pool import WorkerDiedError, WorkerPool

#: The image whose worker is killed (set in the parent; the spawned
#: workers read it from the environment).
VICTIM = 'BANA_MM_TEST_VICTIM'


def _double_or_die(x: str) -> str:
    """Test job: SIGKILL its own worker for ``x == 'boom'``."""
    if x == 'boom':
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return x * 2


def test_pool_names_the_job_whose_worker_died():
    """Before: BrokenProcessPool for every job in flight (no name), then
    for every later submit."""
    args = ['a', 'b', 'boom', 'c']
    with WorkerPool(2) as pool:
        done = []
        for x in args:
            done += pool.submit(_double_or_die, x, x, name=f'item {x}')
        done += pool.drain()
    results = dict(done)
    assert [c for c, _ in done] == args
    died = results.pop('boom')
    assert isinstance(died, WorkerDiedError)
    assert 'while working on item boom' in str(died)
    assert results == {x: x * 2 for x in args if x != 'boom'}


def _finish_or_die(job):
    """``finish_and_write``, but the worker labelling the victim dies."""
    from bana_mm.det.pseudo_label_runner import finish_and_write
    if job.stem == os.environ.get(VICTIM):
        os.kill(os.getpid(), signal.SIGKILL)
    return finish_and_write(job)


def test_stage2_names_the_image_whose_crf_worker_died(synthetic_root, tmp_path,
                                                      monkeypatch):
    from bana_mm.det import pseudo_label_runner
    from tools.gen_pseudo_labels import exit_code
    victim = read_split(osp.join(synthetic_root, VAL))[2]
    monkeypatch.setenv(VICTIM, victim)
    monkeypatch.setattr(pseudo_label_runner, 'finish_and_write',
                        _finish_or_die)
    checkpoint = make_checkpoint(str(tmp_path / 's1.pth'))
    out = str(tmp_path / 'out')
    run = _run([
        CONFIG, checkpoint, '--data-root', synthetic_root, '--out-dir', out,
        '--split', VAL, '--workers', '1', '--num-vis', '0', '--no-eval'
    ])
    assert [f['image'] for f in run['failed']] == [victim]
    assert 'worker process died' in run['failed'][0]['error']
    assert victim in run['failed'][0]['error']
    assert run['written'] == run['images'] - 1
    assert exit_code(run) == 3


def test_atomic_write_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    from bana_mm.utils import io

    def no_space(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(io.os, 'fsync', no_space)
    path = str(tmp_path / 'label.png')
    with pytest.raises(OSError) as info:
        io.atomic_write_bytes(path, b'data')
    assert info.value.errno == errno.ENOSPC and info.value.filename == path
    assert os.listdir(tmp_path) == []  # no temp file left


def test_a_full_disk_stops_stage2_naming_the_path(synthetic_root, tmp_path,
                                                  monkeypatch):
    """Before: every later image failed the same way, then the run crashed
    writing run.json, without exit code 3."""
    from bana_mm.det import pseudo_label_runner
    from tools.gen_pseudo_labels import exit_code
    written = []

    def write(path, label_map):
        if len(written) >= 2:  # the second image's first map: disk full
            raise OSError(errno.ENOSPC, 'No space left on device', path)
        written.append(path)
        write_label_png(path, label_map)

    monkeypatch.setattr(pseudo_label_runner, 'write_label_png', write)
    checkpoint = make_checkpoint(str(tmp_path / 's1.pth'))
    out = str(tmp_path / 'out')
    run = _run([
        CONFIG, checkpoint, '--data-root', synthetic_root, '--out-dir', out,
        '--split', VAL, '--workers', '0', '--num-vis', '0'
    ])
    second = read_split(osp.join(synthetic_root, VAL))[1]
    assert run['written'] == 1 and len(run['failed']) == 1
    assert run['not_attempted'] == run['images'] - 2
    assert 'No space left on device' in run['stopped']
    assert osp.join(out, 'Yret', f'{second}.png') in run['stopped']
    assert exit_code(run) == 3
    with open(osp.join(out, 'run.json')) as f:
        assert json.load(f)['stopped'] == run['stopped']
    assert not osp.isfile(osp.join(out, 'metrics.json'))
