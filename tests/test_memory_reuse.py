"""CPUMemoryReuseHook / keep_freed_memory: a CPU training process reuses the
memory it frees instead of faulting it in again every step (issue 21).
mallopt changes the whole process, so each check runs in a fresh one."""
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from bana_mm.engine import add_default_hooks
from bana_mm.utils.malloc import _mallopt, keep_freed_memory

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

needs_glibc = pytest.mark.skipif(
    _mallopt() is None, reason='the C library has no mallopt (not glibc)')

#: page faults of the steps of a small CPU training loop whose activations
#: (8x16x256x256 float32, 32 MiB) are above glibc's largest mmap threshold
CYCLE = '''
import torch
from bana_mm.utils.malloc import page_faults
def cycles(n=8):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 1, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(8, 3, 256, 256)
    counts, losses = [], []
    for _ in range(n):
        before = page_faults()
        loss = net(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        counts.append(page_faults() - before)
        losses.append(loss.item())
    return counts[-4:], losses
'''


def run_python(code: str) -> str:
    proc = subprocess.run([sys.executable, '-c', code],
                          capture_output=True,
                          text=True,
                          cwd=REPO,
                          env={
                              'PYTHONPATH': REPO,
                              'PATH': '/usr/bin:/bin'
                          })
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@needs_glibc
def test_freed_memory_is_reused_after_keep_freed_memory():
    code = CYCLE + textwrap.dedent('''
        from bana_mm.utils.malloc import keep_freed_memory
        default, losses_a = cycles()
        assert keep_freed_memory()
        kept, losses_b = cycles()
        print(min(default), sum(default), sum(kept), losses_a == losses_b)
    ''')
    low, default, kept, same = run_python(code).split()
    # by default every step maps and faults in its large tensors again
    # (8192 pages of 4 KiB each); kept, the last steps reuse the heap
    assert int(low) > 8 * 8192
    assert int(kept) < int(default) / 20, (kept, default)
    # and compute exactly the same losses
    assert same == 'True'


def test_trim_threshold_is_checked():
    with pytest.raises(ValueError, match='trim_threshold'):
        keep_freed_memory(0)
    with pytest.raises(ValueError, match='trim_threshold'):
        keep_freed_memory(2**31)


HOOK = '''
import logging, torch
from types import SimpleNamespace
from bana_mm.engine import CPUMemoryReuseHook
class Logger:
    def info(self, msg):
        print('LOG', msg)
def runner_on(device):
    model = torch.nn.Linear(2, 2)
    model.to(device)
    return SimpleNamespace(model=model, logger=Logger())
'''


@needs_glibc
def test_hook_applies_on_a_cpu_model():
    code = CYCLE + HOOK + textwrap.dedent('''
        default, _ = cycles()
        hook = CPUMemoryReuseHook()
        hook.before_run(runner_on('cpu'))
        kept, _ = cycles()
        print(hook.applied, min(default), sum(default), sum(kept))
    ''')
    applied, low, default, kept = run_python(code).split()
    assert applied == 'True'
    assert int(low) > 8 * 8192
    assert int(kept) < int(default) / 20, (kept, default)


def test_hook_leaves_a_model_without_parameters_alone():
    code = HOOK + textwrap.dedent('''
        hook = CPUMemoryReuseHook()
        runner = runner_on('cpu')
        runner.model = torch.nn.ReLU()
        hook.before_run(runner)
        print(hook.applied)
    ''')
    assert run_python(code) == 'False'


def test_default_hooks_are_added_unless_the_config_sets_them():
    from mmengine.config import Config
    cfg = Config(dict(default_hooks=dict(timer=dict(type='IterTimerHook'))))
    add_default_hooks(cfg)
    assert cfg.default_hooks.cpu_memory_reuse == dict(
        type='CPUMemoryReuseHook')
    assert cfg.default_hooks.finite_loss == dict(type='FiniteLossHook')
    off = Config(dict(default_hooks=dict(cpu_memory_reuse=None)))
    add_default_hooks(off)
    assert off.default_hooks.cpu_memory_reuse is None
    empty = Config(dict())
    add_default_hooks(empty)
    assert set(empty.default_hooks) == {'finite_loss', 'cpu_memory_reuse'}
