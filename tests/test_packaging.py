"""A wheel (``pip install .`` without ``-e``) works away from the checkout.

The wheel is built from a copy of the checkout and installed with
``--no-deps`` into a fresh venv that sees the running interpreter's packages
(torch, mmcv, ... are not reinstalled) but not the checkout; every command
runs from an empty folder with PYTHONPATH unset. About a minute on 2 cores.
``make wheel-smoke`` runs this file alone.
"""
import glob
import json
import os
import os.path as osp
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile

import pytest

from conftest import REPO

#: What `pip wheel` reads from the checkout.
BUILD_INPUTS = ('setup.py', 'setup.cfg', 'MANIFEST.in', 'README.md', 'LICENSE',
                'model-index.yml', 'bana_mm', 'configs', 'tools',
                'requirements')


def _checkout_configs():
    root = osp.join(REPO, 'configs')
    return sorted(
        osp.relpath(p, root)
        for p in glob.glob(osp.join(root, '**', '*.py'), recursive=True)
        if '_base_' not in osp.relpath(p, root).split(os.sep))


def _run(cmd, cwd, env, timeout=900):
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f'{" ".join(map(str, cmd))} failed ({proc.returncode}):\n'
        f'{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc.stdout


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp('src')
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', 'work_dirs')
    for name in BUILD_INPUTS:
        path = osp.join(REPO, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, ignore=ignore)
        elif osp.isfile(path):
            shutil.copy(path, src / name)
    dist = tmp_path_factory.mktemp('dist')
    _run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '-q', '-w',
        str(dist),
        str(src)
    ],
         cwd=str(src),
         env=dict(os.environ))
    wheels = glob.glob(str(dist / 'bana_mm-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope='module')
def venv(wheel, tmp_path_factory):
    """(python of a fresh venv with the wheel installed, clean env)."""
    root = tmp_path_factory.mktemp('venv')
    _run([sys.executable, '-m', 'venv', '--without-pip',
          str(root)],
         cwd=str(root),
         env=dict(os.environ))
    python = str(root / 'bin' / 'python')
    purelib = _run([
        python, '-c', 'import sysconfig; '
        'print(sysconfig.get_paths()["purelib"])'
    ],
                   cwd=str(root),
                   env=dict(os.environ)).strip()
    # the running interpreter's packages, as plain path entries: their .pth
    # files (an editable install of the checkout among them) are not run
    with open(osp.join(purelib, '_project_stack.pth'), 'w') as f:
        f.write('\n'.join(site.getsitepackages()) + '\n')
    _run([
        sys.executable, '-m', 'pip', '--python', python, 'install', '-q',
        '--no-deps', '--no-index', wheel
    ],
         cwd=str(root),
         env=dict(os.environ))
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['PYTHONNOUSERSITE'] = '1'
    return python, env, str(root)


@pytest.fixture(scope='module')
def outside(tmp_path_factory):
    """An empty working folder, away from the checkout."""
    return str(tmp_path_factory.mktemp('outside'))


@pytest.fixture(scope='module')
def small_data(venv, outside):
    python, env, _ = venv
    root = osp.join(outside, 'synthetic')
    _run([
        python, '-m', 'bana_mm.tools', 'make_synthetic_dataset', root,
        '--num-train', '4', '--num-val', '2'
    ],
         cwd=outside,
         env=env)
    return root


def test_wheel_carries_configs_tools_and_no_tests(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n[len('bana_mm/.mim/configs/'):] for n in names
                     if n.startswith('bana_mm/.mim/configs/')
                     and n.endswith('.py') and '/_base_/' not in n)
    assert shipped == _checkout_configs()
    for tool in ('train', 'test', 'gen_pseudo_labels', 'run_pipeline'):
        assert f'bana_mm/.mim/tools/{tool}.py' in names
    assert 'bana_mm/.mim/model-index.yml' in names
    assert 'bana_mm/.mim/configs/bana/metafile.yml' in names
    assert not any(
        n.startswith(('tests/', 'tools/', 'configs/')) for n in names)


def test_installed_package_loads_every_config(venv, outside):
    python, env, root = venv
    script = textwrap.dedent('''
        import copy, json
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmengine.utils import import_modules_from_strings
        import bana_mm
        from bana_mm.utils.config_path import (config_dirs, config_file,
                                               list_configs)
        names = list_configs()
        for name in names:
            Config.fromfile(config_file(name))
        cfg = Config.fromfile(config_file('bana/deeplabv1_nal_tiny.py'))
        init_default_scope(cfg.default_scope)
        import_modules_from_strings(**cfg.custom_imports)
        from mmseg.registry import MODELS
        model = MODELS.build(copy.deepcopy(cfg.model))
        print(json.dumps(dict(
            package=bana_mm.__file__, dirs=config_dirs(), names=names,
            model=type(model).__name__,
            params=sum(p.numel() for p in model.parameters()))))
    ''')
    out = json.loads(
        _run([python, '-c', script], cwd=outside,
             env=env).strip().splitlines()[-1])
    assert out['package'].startswith(root)
    assert len(out['dirs']) == 1
    assert out['dirs'][0].startswith(root) and '.mim' in out['dirs'][0]
    assert out['names'] == _checkout_configs()
    assert out['model'] == 'CRFEncoderDecoder' and out['params'] > 0


def test_installed_train_tool_runs_a_shipped_config(venv, outside, small_data):
    python, env, _ = venv
    work = osp.join(outside, 'train')
    _run([
        python, '-m', 'bana_mm.tools', 'train', 'bana/bap_vgg16_tiny.py',
        '--work-dir', work, '--cfg-options', *[
            f'{k}.dataset.data_root={small_data}/'
            for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        ], 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2'
    ],
         cwd=outside,
         env=env)
    assert osp.isfile(osp.join(work, 'iter_2.pth'))


def test_installed_pipeline_runs_stage1(venv, outside, small_data):
    python, env, _ = venv
    work = osp.join(outside, 'pipeline')
    _run([
        python, '-m', 'bana_mm.tools.run_pipeline', '--data-root', small_data,
        '--work-dir', work, '--stages', '1', '--max-iters', '2'
    ],
         cwd=outside,
         env=env)
    with open(osp.join(work, 'summary.json')) as f:
        summary = json.load(f)
    assert summary['stage1']['iters'] == 2
    assert osp.isfile(summary['stage1']['checkpoint'])
