"""Stage 2: pseudo labels Ycrf / Yret for a box dataset from a stage-1
checkpoint (SPEC §2), with scores and pictures.

    python tools/gen_pseudo_labels.py CONFIG CHECKPOINT --data-root DIR \\
        --out-dir DIR [--split ANN_FILE] [--workers N] [--num-vis K] \\
        [--upsample maps|features] [--max-pixels N] \\
        [--launcher none|pytorch]

CONFIG is the stage-1 config the checkpoint was trained with; its training
set definition (dataset type, classes) with its test pipeline is labelled,
at ``--data-root`` and ``--split`` (the ``ann_file``: an image list for VOC
layout, a json for COCO). Writes OUT/Ycrf/<id>.png, OUT/Yret/<id>.png, the
overlay sheets OUT/vis/, OUT/run.json and, with ground truth, OUT/metrics.json
(COCO input: also OUT/instances_ycrf.json / instances_yret.json and their
mask AP) and OUT/fingerprint.json (checkpoint sha256, options, image list).
A rerun with the same checkpoint, options and images skips finished images;
a different one stops with an error unless ``--overwrite``. The checkpoint is
loaded strictly (every key must fit the config's model). Several processes:
``torchrun --nproc_per_node N tools/gen_pseudo_labels.py ... --launcher
pytorch`` (each image is labelled by exactly one rank).

Exit codes: 0 all images labelled; 1 an error before labelling (bad
checkpoint, out-dir not writable or holding another run's labels, ...);
3 the run finished but some images failed (listed in OUT/run.json) or
were left out of the scores (their ground truth cannot be used; listed in
OUT/metrics.json).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config

import bana_mm  # noqa: F401  (checkpoint loading on torch >= 2.6)
from bana_mm.core.pseudo_labels import (AGNOSTIC_UNARIES, THRESHOLD_REFERENCES,
                                        UPSAMPLE_MODES, PseudoLabelConfig)
from bana_mm.utils.cli import (add_runner_args, init_launcher,
                               merge_cfg_options, parse_runner_args)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate stage-2 pseudo labels (Ycrf, Yret)',
        epilog='exit codes: 0 all images labelled; 1 error before '
        'labelling; 3 some images failed (listed in OUT/run.json) or were '
        'left out of the scores (OUT/metrics.json "errors")')
    parser.add_argument('config', help='stage-1 config file')
    parser.add_argument('checkpoint', help='stage-1 checkpoint')
    parser.add_argument(
        '--data-root',
        help='dataset folder (default: the '
        "config's data_root)")
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument(
        '--split',
        help='ann_file to label (default: the '
        "config's training split)")
    parser.add_argument(
        '--workers',
        type=int,
        default=1,
        help='DenseCRF processes per rank (0 = inline)')
    parser.add_argument(
        '--num-vis',
        type=int,
        default=4,
        help='overlay sheets for the first K images')
    defaults = PseudoLabelConfig()
    parser.add_argument(
        '--upsample',
        choices=UPSAMPLE_MODES,
        default=defaults.upsample,
        help="where the per-pixel maps are computed: 'features' (the "
        "authors' order, exact, memory bounded) or 'maps' "
        '(at feature resolution, then upsampled: cheaper, paper footnote 3)')
    parser.add_argument(
        '--threshold-reference',
        choices=THRESHOLD_REFERENCES,
        default=defaults.threshold_reference,
        help="u0 keeps values >= 0.99 x the max similarity over the whole "
        "image ('similarity', the authors) or inside the boxes ('boxes')")
    parser.add_argument(
        '--align-corners',
        choices=('true', 'false'),
        default=str(defaults.align_corners).lower(),
        help='bilinear alignment of feature maps to the image; true (the '
        'authors): feature cell i sits at pixel 8i')
    parser.add_argument(
        '--no-u0', action='store_true', help='the "Ycrf w/o u0" ablation')
    parser.add_argument(
        '--agnostic-unary',
        choices=AGNOSTIC_UNARIES,
        default=defaults.agnostic_unary,
        help='unary of a class the classifier has no weight for: 1 - u0 '
        "after the 0.99 x max threshold ('u0', default) or 1 - the "
        "unthresholded background attention ('attention')")
    parser.add_argument(
        '--restore-erased-boxes',
        action='store_true',
        help='a box that DenseCRF left without a pixel of its class gets '
        'back the pixels where the CRF input prefers its class (not in the '
        'paper; the lite0 preset of tools/run_pipeline.py turns it on)')
    parser.add_argument(
        '--max-pixels',
        type=int,
        default=defaults.max_pixels,
        help='an image with more pixels is labelled scaled down to at most '
        'this many (network, DenseCRF, retrieval) and its labels are '
        'upsampled to its own size and cut to its boxes there: bounded '
        f'memory for any image size; 0 = off (default {defaults.max_pixels}'
        ' = 2048 x 1024, above any VOC or COCO image)')
    parser.add_argument(
        '--no-eval', action='store_true', help='do not write metrics.json')
    parser.add_argument(
        '--no-grabcut',
        action='store_true',
        help='leave the (slow) GrabCut baseline out')
    parser.add_argument('--device', help='cpu, cuda, ... (default: auto)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help="delete what an earlier stage-2 run wrote in --out-dir "
        "first (needed when the checkpoint, the options or the image list "
        "changed); files stage 2 did not write are kept")
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='load only the checkpoint keys that fit the '
        'model (warns with the others) instead of stopping')
    add_runner_args(parser)
    args = parse_runner_args(parser, argv)
    if args.workers < 0:
        parser.error('--workers must be >= 0')
    if args.max_pixels < 0:
        parser.error('--max-pixels must be >= 0 (0: off)')
    return args


def label_config(args: argparse.Namespace) -> PseudoLabelConfig:
    """The per-image stage-2 options given on the command line."""
    return PseudoLabelConfig(
        upsample=args.upsample,
        threshold_reference=args.threshold_reference,
        align_corners=args.align_corners == 'true',
        background='cam' if args.no_u0 else 'attention',
        agnostic_unary=args.agnostic_unary,
        restore_erased_boxes=args.restore_erased_boxes,
        max_pixels=args.max_pixels)


def main(argv=None) -> dict:
    import torch
    from mmengine.dist import get_rank
    from mmengine.logging import MMLogger

    from bana_mm.apis.stage2 import (EXIT_IMAGES_FAILED, Stage2Options,
                                     build_label_dataset, describe, incomplete,
                                     load_stage1_model, model_classes,
                                     run_stage2)
    args = parse_args(argv)
    for path in (args.config, args.checkpoint):
        if not osp.isfile(path):
            raise FileNotFoundError(f'no such file: {path}')
    cfg = Config.fromfile(args.config)
    merge_cfg_options(cfg, args.cfg_options)
    device = args.device
    if args.launcher != 'none':
        init_launcher(args.launcher, cfg)
        if device is None and torch.cuda.is_available():
            device = f'cuda:{torch.cuda.current_device()}'
    logger = MMLogger.get_instance(
        'bana_mm_stage2', log_level='INFO' if get_rank() == 0 else 'ERROR')
    model, meta = load_stage1_model(
        cfg,
        args.checkpoint,
        device,
        allow_partial=args.allow_partial_checkpoint)
    dataset = build_label_dataset(cfg, args.data_root, args.split)
    options = Stage2Options(
        workers=args.workers,
        num_vis=args.num_vis,
        evaluate=not args.no_eval,
        grabcut=not args.no_grabcut,
        labels=label_config(args))
    logger.info(f'stage 2: {len(dataset)} images -> {args.out_dir}')
    run = run_stage2(
        model,
        dataset,
        args.out_dir,
        options,
        trained_classes=model_classes(cfg, meta),
        checkpoint=args.checkpoint,
        overwrite=args.overwrite)
    logger.info(describe(run, args.out_dir))
    for problem in incomplete(run):
        logger.error(f'stage 2: {problem}; exit code {EXIT_IMAGES_FAILED}')
    return run


def exit_code(run: dict) -> int:
    """0, or ``EXIT_IMAGES_FAILED`` (3) when any image failed or was left
    out of the scores."""
    from bana_mm.apis.stage2 import EXIT_IMAGES_FAILED, incomplete
    return EXIT_IMAGES_FAILED if incomplete(run) else 0


if __name__ == '__main__':
    sys.exit(exit_code(main()))
