"""The command-line tools of a source checkout's ``tools/`` folder, runnable
from an installed package (a wheel ships them in ``bana_mm/.mim/tools``, where
OpenMMLab packages keep the tools ``mim run`` starts)::

    python -m bana_mm.tools run_pipeline --work-dir work_dirs/demo
    python -m bana_mm.tools.run_pipeline --work-dir work_dirs/demo  # same
    python -m bana_mm.tools train CONFIG [--work-dir DIR]
    python -m bana_mm.tools --list
"""
from __future__ import annotations

import glob
import os.path as osp
import runpy
import sys
from typing import List, Optional, Sequence

from ..utils.config_path import shipped_dirs


def list_tools() -> List[str]:
    """Names of the runnable tools (``tools/NAME.py``), sorted."""
    names = set()
    for folder in shipped_dirs('tools'):
        for path in glob.glob(osp.join(folder, '*.py')):
            name = osp.splitext(osp.basename(path))[0]
            if not name.startswith('_'):
                names.add(name)
    return sorted(names)


def tool_path(name: str) -> str:
    """Path of ``tools/NAME.py`` in the checkout or the installed package.

    Raises:
        FileNotFoundError: naming the tool and the tools available.
    """
    for folder in shipped_dirs('tools'):
        path = osp.join(folder, f'{name}.py')
        if osp.isfile(path):
            return path
    raise FileNotFoundError(
        f'no tool {name!r} in {shipped_dirs("tools")}; available: '
        f'{", ".join(list_tools()) or "none"}')


def run_tool(name: str, argv: Optional[Sequence[str]] = None) -> None:
    """Run ``tools/NAME.py`` as ``__main__`` with ``argv`` as its arguments
    (as ``python tools/NAME.py ARGV`` would)."""
    path = tool_path(name)
    saved = sys.argv
    sys.argv = [path, *(sys.argv[1:] if argv is None else argv)]
    try:
        runpy.run_path(path, run_name='__main__')
    finally:
        sys.argv = saved
