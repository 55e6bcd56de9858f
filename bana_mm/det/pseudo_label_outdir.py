"""The stage-2 out-dir before any label is computed (issue 10.2, 20.2,
20.3): a rerun resumes only labels that are still valid, ``overwrite``
deletes only what stage 2 wrote, and files stage 2 did not write are never
replaced.

``OUT/fingerprint.json`` holds the run's record (checkpoint, options,
classes, dataset: :func:`~bana_mm.det.pseudo_label_runner.fingerprint`) and,
under ``images``, what each image's labels were computed from
(:func:`~bana_mm.det.pseudo_label_data.image_inputs`). One writer at a time
is :func:`~bana_mm.utils.io.folder_lock`'s job (taken by the caller).
"""
from __future__ import annotations

import json
import logging
import os
import os.path as osp
from typing import Dict

from ..utils.io import atomic_write_text
from ..utils.label_layout import (FINGERPRINT, MAPS, RECORD_FILES,
                                  check_writable, has_label_files, image_files,
                                  label_path, read_fingerprint, remove_outputs,
                                  remove_stale_temp_files)

#: What to do about labels of another run.
HOW = ('rerun with --overwrite (tools/gen_pseudo_labels.py) or '
       'overwrite=True (PseudoLabelHook, run_stage2) to delete them and '
       'label afresh, or choose another --out-dir')


class StaleLabelsError(RuntimeError):
    """The out-dir holds labels of another run (see ``fingerprint.json``),
    or files stage 2 did not write but would replace."""


def _log(message: str, level: int = logging.INFO) -> None:
    from mmengine.logging import print_log
    print_log(message, logger='current', level=level)


def _shown(items, limit: int = 10) -> str:
    items = list(items)
    more = f' ... ({len(items)} in all)' if len(items) > limit else ''
    return ', '.join(items[:limit]) + more


def out_of_date(out_dir: str, images: Dict[str, dict],
                before: Dict[str, dict]) -> Dict[str, str]:
    """``{stem: why}`` of the images with label files in ``out_dir`` that
    are no longer valid: their inputs changed since (``before``, the
    fingerprint's ``images``), or a label file is empty."""
    names = dict(image='image file', boxes='boxes')
    redo = {}
    for stem, now in images.items():
        existing = [
            p for p in (label_path(out_dir, k, stem) for k in MAPS)
            if osp.isfile(p)
        ]
        if not existing:
            continue
        old = before.get(stem)
        empty = [p for p in existing if osp.getsize(p) == 0]
        if old is None:
            redo[stem] = 'no record of its inputs'
        elif old != now:
            changed = [names.get(k, k) for k in now if old.get(k) != now[k]]
            redo[stem] = f'its {" and ".join(changed)} changed'
        elif empty:
            redo[stem] = f'{empty[0]} is empty (0 bytes)'
    return redo


def prepare_out_dir(out_dir: str,
                    record: dict,
                    images: Dict[str, dict],
                    folders: list,
                    overwrite: bool = False) -> Dict[str, str]:
    """Before computing anything: remove what an earlier stage-2 run wrote
    (``overwrite``), check that ``folders`` are writable, resume only when
    ``fingerprint.json`` matches ``record``, and remove the labels of the
    images whose inputs changed (``images``) or that are empty. Then write
    the fingerprint.

    Returns ``{stem: why}`` of the images to redo (also logged).

    Raises:
        StaleLabelsError: labels of another run; record files
            (``metrics.json``, ...) in a folder without a fingerprint,
            which stage 2 did not write and would replace.
    """
    old = read_fingerprint(out_dir)
    if overwrite:
        stems = sorted(set(images) | set((old or {}).get('images') or {}))
        removed, kept = remove_outputs(out_dir, stems, old is not None)
        if removed:
            _log(f'stage 2: --overwrite removed {len(removed)} file(s) an '
                 f'earlier stage-2 run wrote in {out_dir}')
        if kept:
            _log(
                f'stage 2: --overwrite left {len(kept)} file(s) that stage '
                f'2 did not write: {_shown(kept)}', logging.WARNING)
        old = None
    check_writable(folders)
    path = osp.join(out_dir, FINGERPRINT)
    redo: Dict[str, str] = {}
    if old is None:
        foreign = [n for n in RECORD_FILES if osp.isfile(osp.join(out_dir, n))]
        if foreign:
            raise StaleLabelsError(
                f'{out_dir} holds {", ".join(foreign)} but no {path}: not '
                'written by stage 2, which would replace them; move them or '
                'choose another --out-dir')
        if not overwrite and has_label_files(out_dir):
            raise StaleLabelsError(
                f'{out_dir} holds label files of an unknown run (no {path}); '
                f'{HOW}')
    else:
        previous = {k: v for k, v in old.items() if k != 'images'}
        if previous != record:
            changed = sorted(
                k for k in set(record) | set(previous)
                if previous.get(k) != record.get(k))
            raise StaleLabelsError(
                f'{out_dir} holds labels of a different run ({path} differs '
                f'in: {", ".join(changed) or "format"}); {HOW}')
        redo = out_of_date(out_dir, images, old.get('images') or {})
        for stem in redo:
            for file in image_files(out_dir, stem):
                if osp.isfile(file):
                    os.unlink(file)
        if redo:
            _log(
                f'stage 2: redoing {len(redo)} image(s) whose labels are out '
                'of date: ' + _shown(f'{stem} ({why})'
                                     for stem, why in redo.items()),
                logging.WARNING)
    atomic_write_text(path,
                      json.dumps(dict(record, images=images), indent=2) + '\n')
    remove_stale_temp_files(out_dir)
    return redo
