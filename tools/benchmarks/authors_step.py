"""Training steps of the authors' BANA code against ours, run alternately.

For each stage, the authors' script (``stage1.py`` / ``stage3_vgg.py`` of a
checkout of https://github.com/cvlab-yonsei/BANA, ``--authors-dir``) and
ours (``tools/train.py`` with ``configs/bana/bap_vgg16_voc.py`` /
``configs/bana/deeplabv1_nal_voc.py``) train in turn, A B, B A, A B, ...
(``--rounds`` alternations), each in a fresh process under
``step_probe.py``, on the same images, batch, crop, loader workers and
thread count, from random initial weights (no ImageNet file on either
side). A step's time is the time between the ends of two optimizer steps
(a whole iteration: data wait, forward, backward, step, logging); a run's
figure is the median of steps ``--first`` .. ``--steps``. The table gives,
per side, the median over the runs with the lowest and highest run, and
two ratios ours / theirs: of the medians, and the median of the per-round
ratios (the figure least sensitive to other load). ``--profile`` adds one
torch.profiler run per side and stage (steps 7-9) and prints the ops whose
self CPU time per step differs most.

Nothing of the authors' code is copied into this repository or edited: the
checkout is copied to a temporary folder (without ``weights/*.pth``), a
config derived from theirs is written there (``DATA.ROOT``, batch, crop;
everything else as released), and step_probe.py adapts it to a CPU at run
time (``.cuda()`` a no-op, ``torch.load`` of ``vgg_caffe.pth`` -> ``{}``,
DataLoader workers). Data: the RGB images of ``--data-root``'s
``train.txt`` (their loader needs three channels) in a temporary VOC-layout
folder with their ``BgMaskfromBoxes`` masks; stage 3 trains on Ycrf = the
ground truth and Yret = the boxes filled with their class on both sides.

examples:
  git clone https://github.com/cvlab-yonsei/BANA /tmp/BANA
  python tools/benchmarks/authors_step.py --authors-dir /tmp/BANA --quick
  python tools/benchmarks/authors_step.py --authors-dir /tmp/BANA  # ~30 min
  python tools/benchmarks/authors_step.py --authors-dir /tmp/BANA \
      --stages 3 --rounds 1 --profile
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import shutil
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from bana_mm.utils import benchmark as bench  # noqa: E402

PROBE = osp.join(REPO, 'tools', 'benchmarks', 'step_probe.py')
#: stage -> (their script, their config, our config)
STAGES = {
    1: ('stage1.py', 'configs/stage1.yml', 'configs/bana/bap_vgg16_voc.py'),
    3: ('stage3_vgg.py', 'configs/stage3_vgg.yml',
        'configs/bana/deeplabv1_nal_voc.py'),
}
THEIR_WEIGHTS = 'vgg_caffe.pth'
#: profiled runs: steps 7-9 (after 6 warm-up steps)
PROFILE_FROM, PROFILE_STEPS = 6, 3


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--authors-dir',
        required=True,
        help='a checkout of github.com/cvlab-yonsei/BANA (read only)')
    parser.add_argument(
        '--data-root',
        default=bench.shared_dataset('coco128_voc20'),
        help='VOC-layout folder with boxes and SegmentationClass '
        '(default: ../shared/data/coco128_voc20)')
    parser.add_argument(
        '--stages',
        type=int,
        nargs='+',
        default=[1, 3],
        choices=sorted(STAGES))
    parser.add_argument(
        '--rounds', type=int, default=3, help='A/B alternations per stage')
    parser.add_argument(
        '--steps', type=int, default=15, help='optimizer steps per run')
    parser.add_argument(
        '--first',
        type=int,
        default=4,
        help='first step counted (earlier ones warm up)')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--crop', type=int, default=321)
    parser.add_argument(
        '--workers',
        type=int,
        default=2,
        help='DataLoader workers on both sides')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='one profiled run per side and stage')
    parser.add_argument(
        '--top', type=int, default=15, help='ops listed per profiled stage')
    parser.add_argument('--json', default=None, help='write the figures')
    parser.add_argument(
        '--keep',
        default=None,
        help='work folder to keep (default: a temporary '
        'one, deleted)')
    args = bench.parse_with_quick(parser,
                                  dict(rounds=1, steps=5, first=3, batch=2),
                                  argv)
    if args.data_root is None:
        parser.error('give --data-root (no ../shared/data/coco128_voc20)')
    if not osp.isfile(osp.join(args.authors_dir, STAGES[1][0])):
        parser.error(f'{args.authors_dir} has no {STAGES[1][0]}: give a '
                     'checkout of github.com/cvlab-yonsei/BANA')
    if not 2 <= args.first <= args.steps:
        parser.error('need 2 <= --first <= --steps')
    if args.rounds < 0 or (args.rounds == 0 and not args.profile):
        parser.error('--rounds must be >= 1 (or 0 with --profile)')
    return args


# ------------------------------------------------------------------- setup
def rgb_ids(root: str) -> List[str]:
    """The ids of ``train.txt`` whose JPEG has three channels."""
    import mmcv
    with open(osp.join(root, 'ImageSets/Segmentation/train.txt')) as f:
        ids = f.read().split()
    keep = []
    for img_id in ids:
        path = osp.join(root, 'JPEGImages', img_id + '.jpg')
        img = mmcv.imread(path, flag='unchanged', backend='pillow')
        if img is not None and img.ndim == 3 and img.shape[2] == 3:
            keep.append(img_id)
    return keep


def train_ids(data: str) -> List[str]:
    """The ids both sides train on (``train_aug.txt`` of :func:`make_data`)."""
    with open(osp.join(data, 'ImageSets/Segmentation/train_aug.txt')) as f:
        return f.read().split()


def their_bg_mask(xml_path: str) -> 'np.ndarray':  # noqa: F821
    """The authors' ``BgMaskfromBoxes`` mask: 1, 0 on
    ``[ymin:ymax, xmin:xmax]`` of each box (XML integers as slice bounds,
    what their loader and stage 2 do with them)."""
    import numpy as np
    root = ET.parse(xml_path).getroot()
    size = root.find('size')
    h, w = int(size.find('height').text), int(size.find('width').text)
    mask = np.ones((h, w), np.uint8)
    for obj in root.iter('object'):
        x1, y1, x2, y2 = (
            int(float(obj.find(f'bndbox/{k}').text))
            for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        mask[y1:y2, x1:x2] = 0
    return mask


def make_data(root: str, out: str) -> str:
    """A VOC-layout folder both sides read: images and boxes linked,
    ``train_aug.txt`` = the RGB training ids, their background masks,
    ``Generation/{Ycrf,Yret}`` = ground truth / filled boxes."""
    from bana_mm.utils.label_io import write_label_png
    from tools.benchmarks.train_step_cost import write_box_labels
    for sub in ('JPEGImages', 'Annotations', 'SegmentationClass',
                'class_names.txt'):
        if osp.exists(osp.join(root, sub)):
            os.symlink(osp.abspath(osp.join(root, sub)), osp.join(out, sub))
    ids = rgb_ids(root)
    split = osp.join(out, 'ImageSets', 'Segmentation')
    os.makedirs(split)
    for name in ('train_aug.txt', 'train.txt'):
        with open(osp.join(split, name), 'w') as f:
            f.write('\n'.join(ids) + '\n')
    for img_id in ids:
        write_label_png(
            osp.join(out, 'BgMaskfromBoxes', img_id + '.png'),
            their_bg_mask(osp.join(root, 'Annotations', img_id + '.xml')))
    write_box_labels(out, osp.join(out, 'Generation'))
    return out


def copy_theirs(authors_dir: str, out: str) -> str:
    """Their code without ``.git`` and weight files, plus ``logs/``."""
    shutil.copytree(
        authors_dir,
        out,
        ignore=shutil.ignore_patterns('.git', '*.pth', '*.pt'))
    os.makedirs(osp.join(out, 'logs'), exist_ok=True)
    os.makedirs(osp.join(out, 'weights'), exist_ok=True)
    return out


def their_config(code: str, stage: int, data: str,
                 args: argparse.Namespace) -> str:
    """Their released config of the stage with the data folder, batch and
    crop of the benchmark (all else unchanged)."""
    import yaml
    with open(osp.join(code, STAGES[stage][1])) as f:
        cfg = yaml.safe_load(f)
    cfg['DATA'].update(
        ROOT=data,
        BATCH_SIZE=args.batch,
        CROP_SIZE=f'({args.crop}, '
        f'{args.crop})')
    cfg['NAME'] = f'bench_stage{stage}'
    path = osp.join(code, 'configs', f'bench_stage{stage}.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(cfg, f)
    return path


def our_config(stage: int, data: str, work: str,
               args: argparse.Namespace) -> str:
    """Our paper config of the stage on the same data, batch, crop and
    workers; random initial weights; no validation; written as a file for
    tools/train.py."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, STAGES[stage][2]))
    loader = cfg.train_dataloader
    loader.update(batch_size=args.batch, num_workers=args.workers)
    loader.persistent_workers = args.workers > 0
    loader.dataset.update(
        data_root=data + '/', ann_file='ImageSets/Segmentation/train_aug.txt')
    crop = (args.crop, args.crop)
    for step in loader.dataset.pipeline:
        if step['type'] == 'RandomCrop':
            step['crop_size'] = crop
    cfg.model.backbone.init_cfg = None  # PyTorch's default init, as theirs
    if stage == 3:
        loader.dataset.pseudo_label_dir = osp.join(data, 'Generation')
        cfg.model.data_preprocessor.size = crop
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg[key] = None
    cfg.work_dir = osp.join(work, f'ours_stage{stage}')
    path = osp.join(work, f'ours_stage{stage}.py')
    cfg.dump(path)
    return path


# --------------------------------------------------------------------- runs
def run(side: str,
        stage: int,
        paths: Dict[str, str],
        args: argparse.Namespace,
        out: str,
        profile: bool = False) -> dict:
    """One training run under step_probe.py; its JSON."""
    steps = PROFILE_FROM + PROFILE_STEPS if profile else args.steps
    probe = [sys.executable, PROBE, '--steps', str(steps), '--out', out]
    if profile:
        probe += [
            '--profile-from',
            str(PROFILE_FROM), '--profile-steps',
            str(PROFILE_STEPS)
        ]
    if side == 'theirs':
        code = paths['code']
        cmd = probe + [
            '--no-cuda', '--empty-weights', THEIR_WEIGHTS, '--loader-workers',
            str(args.workers), '--',
            osp.join(code, STAGES[stage][0]), '--config-file',
            paths[f'theirs{stage}']
        ]
        cwd = code
    else:
        cmd = probe + [
            '--',
            osp.join(REPO, 'tools', 'train.py'), paths[f'ours{stage}']
        ]
        cwd = REPO
    log = out[:-len('.json')] + '.log'
    with open(log, 'w') as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not osp.isfile(out):
        with open(log) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'{side} stage {stage} failed '
                           f'(exit {proc.returncode}), log {log}:\n{tail}')
    with open(out) as f:
        return json.load(f)


def run_median(result: dict, first: int) -> float:
    """Median of the step times from step ``first`` on."""
    times = [t for s, t in result['step_seconds'].items() if int(s) >= first]
    return statistics.median(times)


def summarise(runs: Dict[str, List[float]]) -> dict:
    """Median, lowest and highest run per side; the two ratios."""
    out = {}
    for side, values in runs.items():
        out[side] = dict(
            median=statistics.median(values),
            low=min(values),
            high=max(values),
            runs=values)
    out['ratio_of_medians'] = out['ours']['median'] / out['theirs']['median']
    out['paired_ratio'] = statistics.median(
        o / t for o, t in zip(runs['ours'], runs['theirs']))
    return out


def op_rows(theirs: dict, ours: dict,
            top: int) -> List[Tuple[str, str, str, str]]:
    """The ``top`` ``aten::`` ops whose self CPU ms per step differ most
    (calls per step in brackets), and the sum over all profiled events."""

    def aten(ops: Dict[str, List[float]]) -> Dict[str, Tuple[float, float]]:
        return {
            k: (v[0], v[2])
            for k, v in ops.items() if k.startswith('aten::')
        }

    rows = [(k, f'{t[0]:.1f} ({t[1]:.1f})', f'{o[0]:.1f} ({o[1]:.1f})',
             f'{o[0] - t[0]:+.1f}') for k, t, o in bench.largest_diffs(
                 aten(theirs['ops']), aten(ours['ops']), top)]
    total_t = sum(v[0] for v in theirs['ops'].values())
    total_o = sum(v[0] for v in ours['ops'].values())
    rows.append(('all events, self CPU', f'{total_t:.1f}', f'{total_o:.1f}',
                 f'{total_o - total_t:+.1f}'))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    work = args.keep or tempfile.mkdtemp(prefix='authors_step_')
    os.makedirs(work, exist_ok=True)
    try:
        data = osp.join(work, 'VOC')
        if not osp.isdir(data):
            os.makedirs(data)
            make_data(args.data_root, data)
        code = osp.join(work, 'theirs')
        if not osp.isdir(code):
            copy_theirs(args.authors_dir, code)
        paths = dict(code=code)
        for stage in args.stages:
            paths[f'theirs{stage}'] = their_config(code, stage, data, args)
            paths[f'ours{stage}'] = our_config(stage, data, work, args)
        print(bench.machine_line(), flush=True)
        figures: dict = dict(
            setting=dict(
                batch=args.batch,
                crop=args.crop,
                workers=args.workers,
                steps=args.steps,
                first=args.first,
                rounds=args.rounds,
                images=len(train_ids(data))))
        rows = []
        for stage in args.stages:
            runs: Dict[str, List[float]] = dict(theirs=[], ours=[])
            for r in range(args.rounds):
                order = ('theirs', 'ours') if r % 2 == 0 else ('ours',
                                                               'theirs')
                for side in order:
                    res = run(side, stage, paths, args,
                              osp.join(work, f'{side}{stage}_r{r}.json'))
                    runs[side].append(run_median(res, args.first))
                    print(
                        f'stage {stage} round {r + 1} {side}: '
                        f'{runs[side][-1]:.3f} s/step',
                        flush=True)
            if not args.rounds:
                continue
            s = summarise(runs)
            figures[f'stage{stage}'] = s
            rows.append(
                (f'stage {stage}',
                 *(f"{s[side]['median']:.3f} [{s[side]['low']:.3f}-"
                   f"{s[side]['high']:.3f}]" for side in ('theirs', 'ours')),
                 f"{s['ratio_of_medians']:.3f}", f"{s['paired_ratio']:.3f}"))
        if rows:
            print(
                f'\ns/step, median of steps {args.first}-{args.steps} per '
                f'run; median [lowest-highest] of {args.rounds} run(s) per '
                f'side; batch {args.batch}, crop {args.crop}, {args.workers} '
                'loader workers')
            print(
                bench.format_table(
                    ('stage', 'theirs', 'ours', 'ours/theirs', 'paired'),
                    rows))
        if args.profile:
            for stage in args.stages:
                prof = {
                    side:
                    run(side,
                        stage,
                        paths,
                        args,
                        osp.join(work, f'{side}{stage}_prof.json'),
                        profile=True)
                    for side in ('theirs', 'ours')
                }
                figures.setdefault(f'stage{stage}', {})['ops'] = {
                    side: p['ops']
                    for side, p in prof.items()
                }
                print(f'\nstage {stage}: self CPU ms per step (calls), '
                      'steps 7-9, ops that differ most')
                print(
                    bench.format_table(
                        ('op', 'theirs', 'ours', 'ours - theirs'),
                        op_rows(prof['theirs'], prof['ours'], args.top)))
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(figures, f, indent=1)
        return figures
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
