"""bana-mm: Background-Aware Pooling and Noise-Aware Loss as an OpenMMLab plugin."""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'bana_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


# The stack known to work together (SPEC §6). torch is not pinned here so GPU
# users keep their own CUDA build; the Makefile installs torch 2.13.0 (CPU).
INSTALL_REQUIRES = [
    'mmengine==0.10.7',
    'mmcv==2.1.0',
    'mmsegmentation==1.2.2',
    'mmdet==3.3.0',
    'pydensecrf2==1.1',
    'pycocotools',
    'opencv-python-headless',
    'numpy',
    'ftfy',  # imported by mmseg 1.2.2 without being declared
    'regex',  # idem
    'setuptools<82',  # mmcv's setup.py and mmengine import pkg_resources
]

setup(
    name='bana-mm',
    version=read_version(),
    description='Box-supervised segmentation (BANA, CVPR 2021) for '
    'mmsegmentation and mmdetection',
    long_description=open('README.md').read() if osp.exists('README.md')
    else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tools', 'configs', 'docs')),
    python_requires='>=3.8',
    install_requires=INSTALL_REQUIRES,
    extras_require=dict(tests=['pytest']),
    license='Apache-2.0',
)
