"""bana-mm: box-supervised segmentation (BANA, CVPR 2021) as an OpenMMLab plugin.

Importing the top-level package is cheap and scope-neutral: it registers the
scope-free models (the VGG-16 LargeFOV backbone) in mmengine's root registry and
makes mmengine checkpoints loadable on torch >= 2.6. Scope adapters live in
sub-packages that configs import explicitly:

* ``bana_mm.det``  — mmdet scope: box datasets, stage-1 BAP classifier, stage 2.
* ``bana_mm.seg``  — mmseg scope: noise-aware loss and DeepLab heads (stage 3).
"""
from .utils.checkpoint import allow_mmengine_checkpoints
from .version import __version__

allow_mmengine_checkpoints()

from . import models  # noqa: E402,F401  (registers scope-neutral modules)

__all__ = ['__version__', 'allow_mmengine_checkpoints']
