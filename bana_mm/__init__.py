"""bana-mm: box-supervised segmentation (BANA, CVPR 2021; MDH) as an
OpenMMLab plugin.

Importing the top-level package is cheap and scope-neutral: it registers the
scope-free modules (VGG-16 LargeFOV backbone, RandomRescale, ProgressBarHook)
in mmengine's root registries and makes mmengine checkpoints loadable on
torch >= 2.6. Scope adapters live in sub-packages that configs import:

* ``bana_mm.det``  — mmdet scope: box datasets, stage-1 BAP classifier.
"""
from .utils.checkpoint import allow_mmengine_checkpoints
from .version import __version__

allow_mmengine_checkpoints()

from . import datasets, engine, models  # noqa: E402,F401  (registration)

__all__ = ['__version__', 'allow_mmengine_checkpoints']
