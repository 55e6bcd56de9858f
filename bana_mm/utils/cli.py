"""Command-line pieces shared by the OpenMMLab-style tools."""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (xxx=yyy format)')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser,
                      argv: Optional[Sequence[str]] = None
                      ) -> argparse.Namespace:
    """Parse and export ``LOCAL_RANK`` for mmengine."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def init_launcher(launcher: str, cfg=None) -> None:
    """Start the process group of ``launcher`` with the config's backend
    (CPU-only machines: gloo, see :func:`~bana_mm.utils.dist.init_distributed`)."""
    from .dist import init_distributed
    backend = 'nccl'
    if cfg is not None:
        backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get(
            'backend', backend)
    init_distributed(launcher, backend)
