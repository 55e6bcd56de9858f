"""Evaluate a checkpoint of a bana-mm model (OpenMMLab entry point).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE|DIR]
                         [--show-dir DIR] [--tta] [--no-crf]
                         [--allow-partial-checkpoint]
                         [--cfg-options k=v ...] [--launcher pytorch]

CONFIG is a file or a shipped config name (``configs/bana/...``, found in an
installed package too). The checkpoint must fit the config's model exactly
(as in stage 2): missing, unexpected or other-shape keys are an error naming
them, unless ``--allow-partial-checkpoint``. As in mmseg 1.x / mmdet 3.x,
mmengine logs the metrics and writes them to
``WORK_DIR/TIMESTAMP/TIMESTAMP.json`` (mIoU, aAcc and accuracies in percent;
COCO AP in [0, 1], as mmseg's ``IoUMetric`` and mmdet's ``CocoMetric``
report them). ``--out`` keeps the predictions:

* ``X.pkl`` / ``X.pickle``: every prediction data sample, pickled by an
  mmengine ``DumpResults`` appended to the runner's ``test_evaluator`` (as
  mmdet's tools/test.py), without ground truth and dense feature / logit
  maps (:mod:`bana_mm.evaluation.dump`);
* a folder, for segmentation configs: one class-index PNG a test image,
  written by ``IoUMetric(output_dir=...)`` (as mmseg's tools/test.py).

``--show-dir`` switches the config's visualization hook on for every test
image: ``SegVisualizationHook`` saves under ``DIR/vis_data/vis_image`` (the
visualizer's save_dir, as mmseg), mmdet's ``DetVisualizationHook`` under
``WORK_DIR/TIMESTAMP/DIR`` (as mmdet). The stage-1 configs have no picture
of their own (the classifier names given boxes): stage 2 draws them
(``tools/gen_pseudo_labels.py --num-vis``).

A config with ``crf_at_test = True`` (the DeepLab paper configs) is evaluated
the way the paper reports, with the DenseCRF of ``model.test_cfg.crf``
(which stays off for the validation during training); ``--no-crf`` reports
the raw network output instead.
"""
import argparse
import os.path as osp
import sys
import uuid

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config
from mmengine.runner import Runner

import bana_mm  # noqa: F401  (checkpoint loading on torch >= 2.6)
from bana_mm.utils.cli import (add_runner_args, init_launcher,
                               merge_cfg_options, parse_runner_args)
from bana_mm.utils.config_path import config_file

EXAMPLES = """examples:
  python tools/test.py configs/bana/bap_vgg16_voc.py \
work_dirs/bap_vgg16_voc/iter_8000.pth
  python tools/test.py configs/bana/deeplabv2_nal_voc.py CKPT
  python tools/test.py configs/bana/deeplabv2_nal_voc.py CKPT --tta
"""

PICKLE_SUFFIXES = ('.pkl', '.pickle')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (evaluate) a bana-mm model',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'config',
        help='test config: a file or a shipped '
        'config name (configs/bana/...)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='folder of the logs and of the '
        'metrics json mmengine writes')
    parser.add_argument(
        '--out',
        help='dump the predictions: a .pkl/.pickle file (mmengine '
        "DumpResults, as mmdet), or for a segmentation config a folder of "
        "predicted label PNGs (IoUMetric's output_dir, as mmseg)")
    parser.add_argument(
        '--show-dir',
        help='save pictures of the predictions of every test '
        "image through the config's visualization hook")
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation: the config's "
        'tta_pipeline (multi-scale + flip) and tta_model')
    parser.add_argument(
        '--no-crf',
        action='store_true',
        help='no DenseCRF post-processing, even where the '
        'config asks for it at test time (crf_at_test)')
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='evaluate even when the checkpoint does not fit the model '
        '(missing, unexpected or other-shape keys; those weights keep their '
        'initial values): for experiments only')
    add_runner_args(parser)
    args = parse_runner_args(parser, argv)
    return args


def check_checkpoint_fits(model, checkpoint: str, config: str,
                          allow_partial: bool) -> None:
    """The strict check stage 2 applies (:func:`~bana_mm.utils.checkpoint.
    fitting_state`): a checkpoint of another model (a stage-1 checkpoint on
    a stage-3 config, another width) is an error naming the file and the
    keys, not an mIoU of a half-initialised model."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    from mmengine.runner.checkpoint import _load_checkpoint

    from bana_mm.utils.checkpoint import fitting_state
    if is_model_wrapper(model):
        model = model.module
    if isinstance(model, BaseTTAModel):
        model = model.module
    fitting_state(model, _load_checkpoint(checkpoint, map_location='cpu'),
                  checkpoint, allow_partial, f'the model of {config}')


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


def trigger_visualization_hook(cfg: Config, show_dir: str,
                               config: str) -> None:
    """Draw every test image with the config's visualization hook, saved
    where mmseg (``SegVisualizationHook``) or mmdet
    (``DetVisualizationHook``) saves them for ``--show-dir``."""
    hook = (cfg.get('default_hooks') or {}).get('visualization')
    if hook is None:
        raise ValueError(
            f'{config} has no visualization hook in default_hooks, so '
            '--show-dir has nothing to draw (the stage-1 configs name given '
            'boxes; tools/gen_pseudo_labels.py --num-vis draws their '
            'stage-2 pictures)')
    hook_type = str(hook.get('type', ''))
    hook.draw = True
    hook.interval = 1
    if hook_type.endswith('DetVisualizationHook'):
        hook.test_out_dir = show_dir
    elif hook_type.endswith('SegVisualizationHook'):
        cfg.visualizer.save_dir = show_dir
        # a visualizer of its own: one of the config's name made earlier in
        # this process (mmengine's ManagerMixin) would keep its save_dir
        cfg.visualizer.name = f'test_show_dir_{uuid.uuid4().hex[:8]}'
    else:
        raise ValueError(f'{config}: --show-dir supports SegVisualizationHook'
                         f' and DetVisualizationHook, not {hook_type!r}')


def _iou_metrics(evaluator) -> list:
    metrics = evaluator if isinstance(evaluator,
                                      (list, tuple)) else [evaluator]
    return [
        m for m in metrics
        if isinstance(m, dict) and str(m.get('type', '')).endswith('IoUMetric')
    ]


def set_prediction_dir(cfg: Config, out: str, config: str) -> None:
    """``--out DIR``: the predicted label maps as PNGs (mmseg's meaning)."""
    iou = _iou_metrics(cfg.get('test_evaluator'))
    if not iou:
        raise ValueError(
            f'--out {out}: a folder of predicted label maps needs a '
            f'segmentation config (an IoUMetric test_evaluator); for '
            f'{config} give a {"/".join(PICKLE_SUFFIXES)} file')
    for metric in iou:
        metric['output_dir'] = out


def main(argv=None) -> dict:
    args = parse_args(argv)
    config = config_file(args.config)
    cfg = Config.fromfile(config)
    cfg.launcher = args.launcher
    if args.show_dir:  # before --cfg-options, which may override interval
        trigger_visualization_hook(cfg, args.show_dir, args.config)
    merge_cfg_options(cfg, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
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
    if args.out is not None and args.out.endswith('.json'):
        raise ValueError(
            f'--out {args.out}: --out keeps the predictions (a .pkl file, or '
            'a folder for a segmentation config) as in mmdet / mmseg; the '
            'metrics are in WORK_DIR/TIMESTAMP/TIMESTAMP.json')
    dump = args.out is not None and args.out.endswith(PICKLE_SUFFIXES)
    if args.out is not None and not dump:
        set_prediction_dir(cfg, args.out, args.config)
    init_launcher(args.launcher, cfg)
    runner = Runner.from_cfg(cfg)
    check_checkpoint_fits(runner.model, args.checkpoint, args.config,
                          args.allow_partial_checkpoint)
    if dump:
        from bana_mm.evaluation.dump import DumpPredictions
        runner.test_evaluator.metrics.append(
            DumpPredictions(out_file_path=args.out))
    return runner.test()


if __name__ == '__main__':
    main()
