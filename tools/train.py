"""Train a bana-mm model with mmengine's Runner (OpenMMLab entry point).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher pytorch]

CONFIG is a file, or a shipped config's name (``bana/bap_vgg16_voc.py``),
which also works from an installed package:
``python -m bana_mm.tools train bana/bap_vgg16_voc.py``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config
from mmengine.runner import Runner

import bana_mm  # noqa: F401  (checkpoint loading on torch >= 2.6)
from bana_mm.engine import add_default_hooks
from bana_mm.utils.cli import (add_runner_args, init_launcher,
                               merge_cfg_options, parse_runner_args)
from bana_mm.utils.config_path import config_file

EXAMPLES = """examples:
  # stage 1 (BAP) on PASCAL VOC, the paper's schedule
  python tools/train.py configs/bana/bap_vgg16_voc.py \\
      --work-dir work_dirs/bap_vgg16_voc
  # the tiny CPU preset on the embedded synthetic data, 40 iterations
  python tools/make_synthetic_dataset.py data/synthetic
  python tools/train.py bana/bap_vgg16_tiny.py --cfg-options \\
      train_cfg.max_iters=40 train_cfg.val_interval=40
  # stage 3 (DeepLab-V2 + NAL) on stage-2 pseudo labels, resumed
  python tools/train.py configs/bana/deeplabv2_nal_voc.py --resume \\
      --cfg-options train_dataloader.dataset.pseudo_label_dir=PSEUDO_DIR
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train a bana-mm model',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'config',
        help='config file, or a shipped config name relative to '
        'configs/ (e.g. bana/bap_vgg16_tiny.py)')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or from the latest checkpoint of the work '
        'dir when no path is given')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision (GPU)')
    add_runner_args(parser)
    args = parse_runner_args(parser, argv)
    return args


def build_config(args: argparse.Namespace) -> Config:
    try:
        cfg = Config.fromfile(config_file(args.config))
    except FileNotFoundError as err:
        raise SystemExit(f'tools/train.py: {err}')
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    add_default_hooks(cfg)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None) -> Runner:
    args = parse_args(argv)
    cfg = build_config(args)
    init_launcher(args.launcher, cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    main()
