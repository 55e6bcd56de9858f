"""Command-line pieces shared by the OpenMMLab-style tools."""
from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

#: Where a split given by name is looked for, relative to the data root, in
#: this order (VOC segmentation lists, VOC detection lists, COCO jsons).
SPLIT_PATTERNS = (
    'ImageSets/Segmentation/{}.txt',
    'ImageSets/Main/{}.txt',
    'annotations/instances_{}.json',
    'annotations/{}.json',
)


def share_or_off(value: str) -> Union[float, str]:
    """argparse type of a share in [0, 1) or the word ``off`` (returned as
    ``'off'``), e.g. ``--grabcut-fill-below``."""
    if value == 'off':
        return value
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not 0 <= share < 1:
        raise argparse.ArgumentTypeError(
            f'a share in [0, 1) or off, not {value!r}')
    return share


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (xxx=yyy format)')
    parser.add_argument(
        '--launcher',
        default='none',
        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(
        parser: argparse.ArgumentParser,
        argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse and export ``LOCAL_RANK`` for mmengine."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


#: Top-level config keys bana-mm's tools read besides the Runner's own.
TOOL_KEYS = ('tta_model', 'tta_pipeline', 'crf_at_test')


def merge_cfg_options(cfg, options: Optional[dict]) -> None:
    """``cfg.merge_from_dict(options)`` (``--cfg-options``), with a warning
    naming each top-level key that nothing reads: not in the config, not an
    argument of mmengine's ``Runner``, not one of :data:`TOOL_KEYS` (e.g. a
    misspelt ``load_form=...``, which would be ignored silently)."""
    import inspect
    import logging

    from mmengine.logging import print_log
    from mmengine.runner import Runner
    if not options:
        return
    known = set(cfg.keys()) | set(
        inspect.signature(Runner.__init__).parameters) | set(TOOL_KEYS)
    unused = sorted({key.split('.')[0] for key in options} - known)
    cfg.merge_from_dict(options)
    if unused:
        print_log(
            f'--cfg-options: nothing reads the top-level key(s) '
            f'{", ".join(unused)} (not in the config, not a Runner '
            'setting): misspelt? They have no effect.',
            logger='current',
            level=logging.WARNING)


def init_launcher(launcher: str, cfg=None) -> None:
    """Start the process group of ``launcher`` with the config's backend
    (CPU-only machines: gloo, see
    :func:`~bana_mm.utils.dist.init_distributed`)."""
    from .dist import init_distributed
    backend = 'nccl'
    if cfg is not None:
        backend = cfg.get('env_cfg', {}).get('dist_cfg',
                                             {}).get('backend', backend)
    init_distributed(launcher, backend)


def split_candidates(split: str) -> List[str]:
    """Paths (relative to a data root) that the split name ``split`` may
    mean, in the order :func:`resolve_split` tries them."""
    return [pattern.format(split) for pattern in SPLIT_PATTERNS]


def resolve_split(data_root: Optional[str],
                  split: Optional[str]) -> Optional[str]:
    """The ``ann_file`` that ``--split`` means.

    ``split`` may be a path relative to ``data_root`` (``ImageSets/
    Segmentation/train.txt``, returned as given), an existing absolute or
    working-directory path (returned absolute), or a bare name (``train``,
    ``val``, ``train_aug``) looked up with :data:`SPLIT_PATTERNS` (returned
    relative to ``data_root``, as mmengine's ``ann_file`` expects). None
    stays None (the config's own split).

    Raises:
        FileNotFoundError: naming the data root and every path tried.
    """
    if split is None:
        return None
    root = data_root or ''
    if osp.isabs(split):
        if osp.isfile(split):
            return split
        raise FileNotFoundError(f'split file {split} does not exist')
    if osp.isfile(osp.join(root, split)):
        return split
    tried = [osp.join(root, split)]
    name = split[:-len('.txt')] if split.endswith('.txt') else split
    if '/' not in name and os.sep not in name:
        for rel in split_candidates(name):
            if osp.isfile(osp.join(root, rel)):
                return rel
            tried.append(osp.join(root, rel))
    if osp.isfile(split):  # relative to the working directory
        return osp.abspath(split)
    raise FileNotFoundError(
        f'split {split!r} not found under data root {data_root!r}; tried: ' +
        ', '.join(tried))
