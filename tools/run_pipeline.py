"""Run the BANA pipeline in one command and write WORK/summary.json.

    python tools/run_pipeline.py [--data-root DIR] --work-dir DIR
                                 [--preset tiny|lite0|full] [--stages 1,2,3]
                                 [--workers N] [--max-iters N] [--no-twin]
    python tools/run_pipeline.py --method mdh [--data-root DIR] --work-dir DIR
                                 [--preset tiny|lite0|full] [--full-split FILE]
                                 [--rounds K] [--max-iters N] [--workers N]
                                 [--tau T] [--bana-labels DIR]
                                 [--box-constraint [off|drop|restrict]]
                                 [--pseudo-masks eq3|fill_ignored]
                                 [--grabcut-margin M]
                                 [--grabcut-fill-below S|off]
                                 [--annnet-config C]
                                 [--segnet-config C]

--method mdh runs the MDH job instead (docs/mdh.md): proposals, AnnNet,
pseudo masks (K rounds), SegNet; --full-split lists the fully labelled ids.

Without --data-root, the embedded synthetic dataset is generated in
WORK/synthetic_data. --data-root takes a PASCAL-VOC-layout folder (JPEGImages,
Annotations, ImageSets, optional class_names.txt), e.g.
../shared/data/coco128_voc20.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction

from bana_mm.apis import parse_stages, run_pipeline
from bana_mm.utils.cli import share_or_off


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='examples:\n'
        '  python tools/run_pipeline.py --work-dir work_dirs/demo\n'
        '  python tools/run_pipeline.py --data-root '
        '../shared/data/coco128_voc20 --work-dir work_dirs/coco128 '
        '--stages 1,2\n'
        '  python -m bana_mm.tools.run_pipeline --work-dir work_dirs/demo')
    parser.add_argument(
        '--data-root',
        help='VOC-layout dataset folder '
        '(default: generate the embedded synthetic dataset)')
    parser.add_argument('--work-dir', required=True, help='output folder')
    parser.add_argument(
        '--preset', default='tiny', choices=['tiny', 'lite0', 'full'])
    parser.add_argument(
        '--stages', default='1,2,3', help='e.g. 1 or 1,2 or 1,2,3 (default)')
    parser.add_argument(
        '--max-iters',
        type=int,
        help='override the iterations of stages 1 and 3')
    parser.add_argument(
        '--workers',
        type=int,
        help='processes for the CPU-bound label maths: DenseCRF of stage 2 '
        '(bana, default 1) or GrabCut of the proposals (mdh, default 2); '
        '0 runs it in the main process')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='stage-1 config overrides, key=value (stage 2 loads '
        'the checkpoint into the same model)')
    parser.add_argument(
        '--method',
        default='bana',
        choices=['bana', 'mdh'],
        help='bana (default) or mdh (docs/mdh.md)')
    parser.add_argument(
        '--full-split',
        help='mdh: file of fully labelled '
        'ids (default: a fixed share, docs/mdh.md)')
    parser.add_argument(
        '--rounds',
        type=int,
        default=1,
        help='mdh: AnnNet rounds (paper Table 6)')
    parser.add_argument(
        '--tau',
        type=float,
        default=0.9,
        help='mdh: pseudo-mask confidence threshold of eq. 3, in (0, 1)')
    parser.add_argument(
        '--bana-labels',
        help='mdh: a BANA stage-2 output folder whose Ycrf/ is the second '
        'proposal (default: the stage2 of WORK/summary.json, else the box)')
    parser.add_argument(
        '--box-constraint',
        nargs='?',
        const='drop',
        choices=['off', 'drop', 'restrict'],
        help='mdh: pseudo masks use the boxes\' classes (not in the paper): '
        'drop (the value when the option is given alone) sets classes '
        'outside their boxes to ignore; restrict applies eq. 3 to AnnNet\'s '
        'probabilities restricted to background + the classes of the boxes '
        'at each pixel; off: eq. 3 alone (default: restrict for --preset '
        'lite0, else off)')
    parser.add_argument(
        '--pseudo-masks',
        choices=['eq3', 'fill_ignored'],
        help='mdh: eq3 (the paper) or fill_ignored (not in the paper: the '
        'masks AnnNet was trained on, only their ignored pixels from eq. 3; '
        'default: fill_ignored for --preset lite0, else eq3)')
    parser.add_argument(
        '--grabcut-margin',
        type=float,
        help='mdh: GrabCut window around each box, in box sizes per side '
        '(default: 1.0 for --preset lite0, else 0.5)')
    parser.add_argument(
        '--grabcut-fill-below',
        type=share_or_off,
        help='mdh: a box whose GrabCut foreground covers at most this share '
        'of it is filled instead (not in the paper); off: never (default: '
        '0.1 for --preset lite0, else off)')
    parser.add_argument(
        '--annnet-config',
        help='mdh: AnnNet config instead of the preset\'s, a name in '
        'configs/mdh/ (e.g. annnet_tiny_nopriors.py) or a path')
    parser.add_argument(
        '--segnet-config',
        help='mdh: SegNet config instead of the preset\'s (e.g. '
        'segnet_tiny_single.py) or a path')
    parser.add_argument(
        '--no-twin',
        action='store_true',
        help='lite0 preset: skip the reference runs trained beside the '
        'method (bana: stage 3 on the ground-truth masks; mdh: SegNet on F '
        'alone)')
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 0:
        parser.error('--workers must be >= 0')
    if args.method == 'mdh':
        from bana_mm.apis.mdh import run_mdh_pipeline
        summary = run_mdh_pipeline(
            args.work_dir,
            args.data_root,
            args.preset,
            args.full_split,
            args.rounds,
            tau=args.tau,
            bana_labels=args.bana_labels,
            max_iters=args.max_iters,
            box_constraint=args.box_constraint,
            pseudo_masks=args.pseudo_masks,
            grabcut_margin=args.grabcut_margin,
            grabcut_fill_below=args.grabcut_fill_below,
            workers=2 if args.workers is None else args.workers,
            annnet_config=args.annnet_config,
            segnet_config=args.segnet_config,
            twin=False if args.no_twin else None)
        print(json.dumps(summary.get('mdh'), indent=2))
        print(f'summary written to {osp.join(args.work_dir, "summary.json")}')
        return summary
    try:
        stages = parse_stages(args.stages)
    except ValueError as err:
        parser.error(str(err))
    summary = run_pipeline(
        args.work_dir,
        args.data_root,
        args.preset,
        stages,
        args.max_iters,
        args.cfg_options,
        1 if args.workers is None else args.workers,
        twin=False if args.no_twin else None)
    print(json.dumps(summary, indent=2))
    if 'stage2' in summary:
        print(f'pseudo labels: {summary["stage2"]["out_dir"]} (metrics.json), '
              f'pictures: {summary["stage2"].get("pictures")}')
    print(f'summary written to {osp.join(args.work_dir, "summary.json")}')
    return summary


if __name__ == '__main__':
    main()
