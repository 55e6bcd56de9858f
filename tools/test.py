"""Evaluate a checkpoint of a bana-mm model (OpenMMLab entry point).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
                         [--tta] [--cfg-options k=v ...]
                         [--launcher pytorch]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import bana_mm  # noqa: E402,F401  (checkpoint loading on torch >= 2.6)
from bana_mm.utils.cli import (add_runner_args, init_launcher,  # noqa: E402
                               parse_runner_args)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a bana-mm model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for the evaluation logs')
    parser.add_argument('--out', help='dump the metrics to this json file')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation: the config's "
                        'tta_pipeline (multi-scale + flip) and tta_model')
    add_runner_args(parser)
    args = parse_runner_args(parser, argv)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ValueError(f'{args.config} defines no tta_model / '
                             'tta_pipeline for --tta')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        # DenseCRF enabled on the model runs once, on the merged views
        crf = (cfg.model.get('test_cfg') or {}).get('crf')
        if crf and crf.get('enabled') and cfg.tta_model.get('crf') is None:
            cfg.tta_model.crf = dict(crf)
            cfg.model.test_cfg.crf.enabled = False
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    init_launcher(args.launcher, cfg)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if args.out and runner.rank == 0:
        from mmengine.fileio import dump
        dump(metrics, args.out)
    return metrics


if __name__ == '__main__':
    main()
