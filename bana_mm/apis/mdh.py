"""The MDH job (Chen et al., "Mixed-dual-head Meets Box Priors", SPEC §5):
proposal masks for W (§3.1) -> AnnNet (5-channel input with priors,
mixed-dual-head) -> pseudo masks for W (eq. 3) [-> rounds, Table 6] ->
SegNet, evaluated on val. ``tools/run_pipeline.py --method mdh`` calls
:func:`run_mdh_pipeline`; docs/mdh.md lists the choices the paper leaves open.

The label writers are in :mod:`bana_mm.seg.mdh.label_writers`, their
scores in :func:`bana_mm.evaluation.label_files.score_label_dir`; this module
holds the splits, the configs and the order of the steps.

Work folder::

    WORK/splits/{full,weak}.txt          F and W ids
    WORK/proposals/masks/<id>.png        proposal masks (0 bg, c, 255 ignore)
    WORK/proposals/grabcut/<id>.png      the GrabCut baseline of paper Table 1
    WORK/proposals/run.json              second proposal used, counts, time
    WORK/round<k>/annnet/                AnnNet work dir of round k
    WORK/round<k>/pseudo/<id>.png        its pseudo masks for W
    WORK/round<K>/segnet/                SegNet work dir (K = last round)
    WORK/vis/<id>.jpg                    sheets: image, priors, masks, GT
    WORK/summary.json                    the ``mdh`` entry

Label PNGs are written atomically. Every step folder records the
fingerprint of its inputs (:mod:`bana_mm.utils.step_record`): a rerun
reuses a step (skips existing PNGs, a trained checkpoint) only when its
inputs are unchanged, and clears and redoes it, and everything downstream,
otherwise. Images are sharded over ranks with
``DefaultSampler(round_up=False)``.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import time
from typing import Optional, Sequence, Union

from ..core.baselines import GrabCutOptions
from ..core.mdh_proposals import (check_box_constraint, check_pseudo_mask_mode,
                                  check_tau)
from ..evaluation.label_files import score_label_dir
from ..seg.mdh.label_writers import (box_dataset, boxes_by_id,
                                     write_pseudo_masks, write_sheets)
from ..utils.step_record import digest
from .common import VOCLayout, ensure_default_dataset, update_summary
from .mdh_steps import (GT_SUBDIR, PAPER_FULL_SHARE, MDHSplits,
                        default_full_ids, earlier_segnet, f_only_config, log,
                        make_splits, mdh_config, refresh_on_rank0,
                        run_proposals, sum_over_ranks, train_entry,
                        train_or_reuse)

__all__ = [
    'MDH_CONFIGS', 'PRESET_BOX_CONSTRAINT', 'PRESET_GRABCUT',
    'PRESET_PSEUDO_MASKS', 'PAPER_FULL_SHARE', 'MDHSplits', 'default_full_ids',
    'make_splits', 'run_proposals', 'mdh_config', 'train_or_reuse',
    'run_mdh_pipeline'
]

#: (AnnNet, SegNet) config of each preset.
MDH_CONFIGS = {
    'tiny': ('annnet_tiny.py', 'segnet_tiny.py'),
    'lite0': ('annnet_lite0_voc.py', 'segnet_lite0_voc.py'),
    'full': ('annnet_hrnetv2-w48_voc.py', 'segnet_deeplabv3plus_r50_voc.py'),
}
#: Box constraint of the pseudo masks when none is asked for: the lite0
#: preset restricts eq. 3 to the boxes' classes (docs/lite0.md, "MDH"),
#: the others follow the paper.
PRESET_BOX_CONSTRAINT = {'lite0': 'restrict'}
#: GrabCut window margin and fill-below share of the proposals when none is
#: asked for: the lite0 preset's were chosen on the val images (docs/mdh.md,
#: "GrabCut that keeps nothing"); the others keep GrabCut as it is.
PRESET_GRABCUT = {'lite0': dict(margin=1.0, fill_below=0.1)}
#: Pseudo masks when none are asked for: the lite0 preset fills only the
#: pixels AnnNet's training masks left ignored (docs/mdh.md, "Pseudo masks
#: that fill the proposals"); the others are the paper's eq. 3.
PRESET_PSEUDO_MASKS = {'lite0': 'fill_ignored'}


def grabcut_options(
        preset: str,
        iterations: int = 5,
        margin: Optional[float] = None,
        fill_below: Union[None, str, float] = None) -> GrabCutOptions:
    """The proposals' GrabCut options: ``margin`` / ``fill_below`` None take
    the preset's (``PRESET_GRABCUT``), else GrabCutOptions' defaults;
    ``fill_below='off'`` never fills."""
    preset_options = PRESET_GRABCUT.get(preset, {})
    if margin is None:
        margin = preset_options.get('margin', GrabCutOptions.margin)
    if fill_below is None:
        fill_below = preset_options.get('fill_below')
    elif fill_below == 'off':
        fill_below = None
    return GrabCutOptions(
        int(iterations), float(margin),
        None if fill_below is None else float(fill_below))


# ------------------------------------------------------------- the job
def _with_val_miou(runner, entry: dict) -> dict:
    """The summary entry of a trained SegNet with its val mIoU (percent),
    running the test loop when training ran no validation."""
    entry = train_entry(entry)
    if 'miou_val' not in entry:
        start = time.perf_counter()
        entry.update(
            miou_val=round(float(runner.test()['mIoU']), 2),
            test_seconds=round(time.perf_counter() - start, 1))
    return entry


def _ycrf_from_summary(summary_path: str) -> Optional[str]:
    """BANA's Ycrf folder recorded by a ``--method bana`` stage-2 run in the
    same work dir, if any."""
    if not osp.isfile(summary_path):
        return None
    with open(summary_path) as f:
        out_dir = (json.load(f).get('stage2') or {}).get('out_dir')
    folder = out_dir and osp.join(out_dir, 'Ycrf')
    return folder if folder and osp.isdir(folder) else None


def run_mdh_pipeline(work_dir: str,
                     data_root: Optional[str] = None,
                     preset: str = 'tiny',
                     full_split: Optional[str] = None,
                     rounds: int = 1,
                     tau: float = 0.9,
                     bana_labels: Optional[str] = None,
                     max_iters: Optional[int] = None,
                     box_constraint: Union[None, bool, str] = None,
                     pseudo_masks: Optional[str] = None,
                     num_vis: int = 4,
                     grabcut_iterations: int = 5,
                     grabcut_margin: Optional[float] = None,
                     grabcut_fill_below: Union[None, str, float] = None,
                     mix_ratio: Optional[Sequence[float]] = None,
                     workers: int = 2,
                     annnet_config: Optional[str] = None,
                     segnet_config: Optional[str] = None,
                     twin: Optional[bool] = None) -> dict:
    """Proposals -> AnnNet -> pseudo masks (x ``rounds``) -> SegNet.

    Args:
        work_dir: output folder (layout in the module docstring).
        data_root: VOC-layout folder with ``SegmentationClass``; None
            generates the embedded synthetic dataset.
        preset: ``'tiny'`` (CPU) or ``'full'`` (paper recipe).
        full_split: file of F ids; default :func:`default_full_ids`.
        rounds: AnnNet rounds; round k+1 trains on round k's pseudo masks.
        tau: eq. 3 threshold in (0, 1).
        bana_labels: a BANA stage-2 output folder (``Ycrf/``) as the second
            proposal; default: the ``stage2`` of ``WORK/summary.json`` if
            any, else the boxes.
        max_iters: override the iterations of AnnNet and SegNet.
        box_constraint: pseudo masks use the boxes' classes (not in the
            paper): ``'drop'`` (or True) sets classes outside their boxes
            to 255, ``'restrict'`` applies eq. 3 to AnnNet's probabilities
            restricted to the classes the boxes allow at each pixel,
            ``'off'`` (or False): eq. 3 alone; None: the preset's
            (``PRESET_BOX_CONSTRAINT``: ``'restrict'`` for lite0, else
            off).
        pseudo_masks: ``'eq3'`` (the paper: eq. 3 everywhere) or
            ``'fill_ignored'`` (not in the paper: the masks AnnNet was
            trained on, their ignored pixels from eq. 3); None: the
            preset's (``PRESET_PSEUDO_MASKS``: ``'fill_ignored'`` for
            lite0, else eq3).
        grabcut_iterations / grabcut_margin / grabcut_fill_below: GrabCut
            of the proposals (:class:`~bana_mm.core.baselines.
            GrabCutOptions`); margin / fill_below None: the preset's
            (:func:`grabcut_options`), ``fill_below='off'``: never fill.
        mix_ratio: F:W ratio r of the strong heads (default: the configs',
            7:1); a zero part is an error.
        workers: GrabCut processes of the proposals (0: the main process).
        annnet_config / segnet_config: replace the preset's config: a name
            in ``configs/mdh/`` (e.g. ``annnet_tiny_nopriors.py`` for paper
            Table 2, ``*_single.py`` / ``*_dual.py`` for Table 4) or a path.
        twin: also train the SegNet config on F alone (``segnet_f_only/``),
            the reference of the semi-supervised SegNet; None: only for the
            ``lite0`` preset.

    Returns:
        the updated summary (its ``mdh`` entry as in issue 11).
    """
    from mmengine.dist import is_main_process

    tau = check_tau(tau)
    if box_constraint is None:
        box_constraint = PRESET_BOX_CONSTRAINT.get(preset)
    box_constraint = check_box_constraint(box_constraint)
    pseudo_masks = check_pseudo_mask_mode(
        PRESET_PSEUDO_MASKS.get(preset) if pseudo_masks is
        None else pseudo_masks)
    grabcut = grabcut_options(preset, grabcut_iterations, grabcut_margin,
                              grabcut_fill_below)
    options = None
    if mix_ratio is not None:
        from ..seg.mdh.sampler import check_ratio
        options = {
            'model.decode_head.mix_ratio':
            list(check_ratio(mix_ratio, 'mix_ratio (r)'))
        }
    if preset not in MDH_CONFIGS:
        raise ValueError(f'unknown preset {preset!r}; choose from '
                         f'{sorted(MDH_CONFIGS)}')
    if int(rounds) < 1:
        raise ValueError(f'rounds must be >= 1; got {rounds}')
    os.makedirs(work_dir, exist_ok=True)
    if data_root is None:
        data_root = ensure_default_dataset(
            osp.join(work_dir, 'synthetic_data'))
    layout = VOCLayout.inspect(data_root)
    if layout.val_split is None:
        raise FileNotFoundError(f'{data_root}: SegNet is evaluated on a val '
                                'split; no ImageSets/*/val.txt found')
    summary_path = osp.join(work_dir, 'summary.json')
    splits = make_splits(layout.root, layout.train_split,
                         osp.join(work_dir, 'splits'), full_split)
    log(f'MDH: F = {len(splits.full)} ids ({splits.full_file}), '
        f'W = {len(splits.weak)} ids')
    ycrf_dir = (
        osp.join(bana_labels, 'Ycrf')
        if bana_labels else _ycrf_from_summary(summary_path))
    proposals = run_proposals(layout, splits, osp.join(work_dir, 'proposals'),
                              ycrf_dir, grabcut, workers)
    log(f'MDH proposals ({proposals["second"]} as second proposal): mIoU '
        f'{proposals["miou"]} %, ignored {proposals["ignored_share"]} %')
    class_names = ('background', ) + tuple(layout.classes)
    boxes = None
    if box_constraint:
        boxes = boxes_by_id(
            box_dataset(layout.root, splits.weak_file, layout.classes))
    annnet_cfg, segnet_cfg = MDH_CONFIGS[preset]
    annnet_cfg = annnet_config or annnet_cfg
    segnet_cfg = segnet_config or segnet_cfg
    weak_dir, inputs = proposals['out_dir'], proposals['fingerprint']
    history = []
    for k in range(1, int(rounds) + 1):
        round_dir = osp.join(work_dir, f'round{k}')
        cfg = mdh_config(annnet_cfg, layout, splits, weak_dir,
                         osp.join(round_dir, 'annnet'), max_iters, options)
        runner, annnet = train_or_reuse(cfg, f'AnnNet round {k}', inputs)
        pseudo_dir = osp.join(round_dir, 'pseudo')
        start = time.perf_counter()
        fingerprint = digest(
            dict(
                annnet=annnet['fingerprint'],
                tau=tau,
                box_constraint=box_constraint,
                pseudo_masks=pseudo_masks))
        refresh_on_rank0(pseudo_dir, fingerprint,
                         f'MDH round {k} pseudo masks')
        report = sum_over_ranks(
            write_pseudo_masks(
                runner, cfg, splits.weak, pseudo_dir, tau, boxes,
                box_constraint,
                weak_dir if pseudo_masks == 'fill_ignored' else None))
        pseudo = score_label_dir(pseudo_dir, splits.weak,
                                 osp.join(layout.root, GT_SUBDIR), class_names)
        pseudo.update(
            report,
            tau=tau,
            box_constraint=box_constraint,
            mode=pseudo_masks,
            out_dir=osp.abspath(pseudo_dir),
            seconds=round(time.perf_counter() - start, 1),
            fingerprint=fingerprint)
        log(f'MDH round {k} pseudo masks: mIoU {pseudo["miou"]} %, ignored '
            f'{pseudo["ignored_share"]} %')
        history.append(
            dict(
                round=k,
                trained_on=osp.abspath(weak_dir),
                annnet=train_entry(annnet),
                pseudo=pseudo))
        weak_dir, inputs = pseudo_dir, fingerprint
        del runner
    for item in history[:-1]:  # SegNets of earlier runs with fewer rounds
        earlier = earlier_segnet(
            mdh_config(segnet_cfg, layout, splits, item['pseudo']['out_dir'],
                       osp.join(work_dir, f'round{item["round"]}', 'segnet'),
                       max_iters, options), item['pseudo']['fingerprint'])
        if earlier is not None:
            item['segnet'] = earlier
    # SegNet of the last round, in its round's folder: reruns with
    # --rounds 1, 2, ... in one work dir keep each round's SegNet (Table 6)
    cfg = mdh_config(segnet_cfg, layout, splits, weak_dir,
                     osp.join(work_dir, f'round{len(history)}', 'segnet'),
                     max_iters, options)
    segnet = _with_val_miou(*train_or_reuse(cfg, 'SegNet', inputs))
    history[-1]['segnet'] = segnet
    f_only = None
    if preset == 'lite0' if twin is None else twin:
        cfg = f_only_config(segnet_cfg, layout, splits,
                            osp.join(work_dir, 'segnet_f_only'), max_iters,
                            options)
        f_only = _with_val_miou(*train_or_reuse(
            cfg, 'SegNet on F only', digest(dict(full=splits.full))))
        log(f'SegNet val mIoU {segnet.get("miou_val")} % vs '
            f'{f_only.get("miou_val")} % trained on F alone')
    pictures = []
    if is_main_process() and num_vis > 0:
        dataset = box_dataset(layout.root, splits.weak_file, layout.classes)
        pictures = write_sheets(
            dataset, layout.classes, splits.weak[:num_vis],
            osp.join(work_dir, 'vis'),
            (proposals['out_dir'], weak_dir, osp.join(layout.root, GT_SUBDIR)))
    entry = dict(
        full=len(splits.full),
        weak=len(splits.weak),
        rounds=len(history),
        configs=dict(annnet=annnet_cfg, segnet=segnet_cfg),
        splits=dict(full=splits.full_file, weak=splits.weak_file),
        proposals={
            k: v
            for k, v in proposals.items() if k != 'baselines'
        },
        annnet=history[-1]['annnet'],
        pseudo=history[-1]['pseudo'],
        segnet=segnet,
        baselines=proposals['baselines'],
        segnet_f_only=f_only,
        history=history,
        pictures=pictures)
    if is_main_process():
        return update_summary(summary_path, dict(mdh=entry))
    return dict(mdh=entry)
