"""Find the shipped configs in a source checkout or in an installed package.

A source checkout keeps them in ``<repo>/configs``; a wheel (``pip install .``
without ``-e``) carries a copy in ``bana_mm/.mim/configs``, the place
OpenMMLab packages use and ``mim`` reads (setup.py copies it at build time).
mmengine 0.10.7 resolves ``pkg::path`` only for the OpenMMLab packages in
``mmengine.config.utils.MODULE2PACKAGE``, so ``bana_mm::`` is not a valid
config prefix: call :func:`config_file` instead.
"""
from __future__ import annotations

import os.path as osp
from importlib import resources
from typing import List

_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def shipped_dirs(name: str = 'configs') -> List[str]:
    """Folders holding the shipped ``name`` (``'configs'`` or ``'tools'``),
    checkout first: ``<repo>/NAME`` when ``bana_mm`` is imported from a
    source checkout, then ``bana_mm/.mim/NAME`` of an installed package."""
    dirs = []
    repo = osp.dirname(_PACKAGE_DIR)
    if osp.isfile(osp.join(repo, 'setup.py')) and osp.isdir(
            osp.join(repo, name)):
        dirs.append(osp.join(repo, name))
    installed = resources.files('bana_mm').joinpath('.mim', name)
    if installed.is_dir():
        # mmengine resolves ``_base_`` against a real file name: a package
        # installed as a folder gives one (zip imports are not supported).
        dirs.append(str(installed))
    return dirs


def config_dirs() -> List[str]:
    """The folders searched by :func:`config_file`, checkout first."""
    return shipped_dirs('configs')


def config_dir() -> str:
    """The folder holding ``bana/``, ``mdh/``, ... config folders.

    Raises:
        FileNotFoundError: if neither a checkout nor an installed copy of
            the configs exists (a wheel built without them).
    """
    dirs = config_dirs()
    if not dirs:
        raise FileNotFoundError(
            f'no configs found: neither {osp.dirname(_PACKAGE_DIR)}/configs '
            f'(source checkout) nor {_PACKAGE_DIR}/.mim/configs (installed '
            'package); reinstall bana-mm from a wheel or a checkout')
    return dirs[0]


def config_file(name: str) -> str:
    """Absolute path of a shipped config.

    Args:
        name: relative to ``configs/`` (``'bana/deeplabv1_nal_tiny.py'``),
            with or without a leading ``configs/``; an existing file path
            is returned unchanged (absolute).

    Raises:
        FileNotFoundError: naming the config and the folders searched.
    """
    if osp.isfile(name):
        return osp.abspath(name)
    rel = name[len('configs/'):] if name.startswith('configs/') else name
    dirs = config_dirs()
    for folder in dirs:
        path = osp.join(folder, rel)
        if osp.isfile(path):
            return path
    raise FileNotFoundError(
        f'config {name!r} not found in {dirs or "any configs folder"}')


def list_configs(folder: str = '') -> List[str]:
    """Names (relative to ``configs/``) of the shipped configs under
    ``folder`` (e.g. ``'bana'``), ``_base_`` files excluded, sorted."""
    import glob
    root = config_dir()
    pattern = osp.join(root, folder, '**', '*.py')
    names = [osp.relpath(p, root) for p in glob.glob(pattern, recursive=True)]
    return sorted(n for n in names if '_base_' not in n.split(osp.sep))
