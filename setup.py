"""bana-mm: Background-Aware Pooling and Noise-Aware Loss as an OpenMMLab
plugin.

Requirements are read from ``requirements/*.txt`` as in OpenMMLab repos:
``runtime.txt`` + ``mminstall.txt`` (the OpenMMLab stack, which
``mim install -e .`` installs with the right mmcv build) form
``install_requires``; the exact versions CI uses are pinned separately in
``requirements/constraints.txt``. torch is not listed, so GPU users keep
their own CUDA build (the Makefile installs torch 2.14.1 + torchvision
0.29.1, which also run on the CPU).

A wheel carries ``configs/``, ``tools/`` and ``model-index.yml`` in
``bana_mm/.mim`` (the folder ``mim`` reads); ``bana_mm.utils.config_path``
finds configs there when the package is not a source checkout.
"""
import os
import os.path as osp
import shutil
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from typing import List

HERE = osp.dirname(osp.abspath(__file__))
#: Files and folders copied into ``bana_mm/.mim`` of a built package.
MIM_FILES = ('configs', 'tools', 'model-index.yml', 'requirements')


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'bana_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(name: str) -> List[str]:
    """Requirement lines of ``requirements/NAME.txt`` (comments, blank lines
    and ``-r``/``-c`` includes dropped)."""
    reqs = []
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def _ignore_build_litter(folder: str, names: List[str]) -> List[str]:
    return [
        n for n in names
        if n in ('__pycache__', 'work_dirs') or n.endswith('.pyc')
    ]


class BuildWithMim(build_py):
    """``build_py`` that also copies :data:`MIM_FILES` into
    ``<build>/bana_mm/.mim`` (OpenMMLab's package layout for configs and
    tools, used by ``mim`` and by ``bana_mm.utils.config_path``)."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):  # reads the checkout
            return
        mim = osp.join(self.build_lib, 'bana_mm', '.mim')
        for name in MIM_FILES:
            src, dst = osp.join(HERE, name), osp.join(mim, name)
            if osp.isdir(src):
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst, ignore=_ignore_build_litter)
            elif osp.isfile(src):
                os.makedirs(mim, exist_ok=True)
                shutil.copyfile(src, dst)


setup(
    name='bana-mm',
    version=read_version(),
    description='Box-supervised segmentation (BANA, CVPR 2021; MDH) for '
    'mmsegmentation and mmdetection',
    long_description=open(osp.join(HERE, 'README.md')).read() if osp.exists(
        osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    keywords='computer vision, weakly supervised segmentation, box '
    'supervision, OpenMMLab',
    packages=find_packages(
        exclude=('tests', 'tests.*', 'tools', 'tools.*', 'configs', 'docs')),
    include_package_data=False,
    python_requires='>=3.8',
    install_requires=(read_requirements('runtime') +
                      read_requirements('mminstall')),
    extras_require=dict(
        tests=read_requirements('tests'),
        mim=read_requirements('mminstall'),
    ),
    classifiers=[
        'Operating System :: OS Independent',
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    license='Apache-2.0',
    cmdclass={'build_py': BuildWithMim},
    zip_safe=False,
)
