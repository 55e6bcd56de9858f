"""Evaluate a checkpoint of a bana-mm model (OpenMMLab entry point).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
                         [--tta] [--no-crf] [--cfg-options k=v ...]
                         [--launcher pytorch]

A config with ``crf_at_test = True`` (the DeepLab paper configs) is evaluated
the way the paper reports, with the DenseCRF of ``model.test_cfg.crf``
(which stays off for the validation during training); ``--no-crf`` reports
the raw network output instead.
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
    parser.add_argument('--no-crf', action='store_true',
                        help='no DenseCRF post-processing, even where the '
                        'config asks for it at test time (crf_at_test)')
    add_runner_args(parser)
    args = parse_runner_args(parser, argv)
    return args


def set_test_crf(cfg: Config, no_crf: bool) -> None:
    """Switch ``model.test_cfg.crf`` on (``crf_at_test``) or off (--no-crf).
    """
    crf = (cfg.model.get('test_cfg') or {}).get('crf')
    if no_crf:
        if crf:
            crf.enabled = False
        if 'crf' in (cfg.get('tta_model') or {}):
            cfg.tta_model.crf = None
    elif cfg.get('crf_at_test', False):
        if not crf:
            raise ValueError('crf_at_test = True but the model has no '
                             'test_cfg.crf settings')
        crf.enabled = True


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
    set_test_crf(cfg, args.no_crf)
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
