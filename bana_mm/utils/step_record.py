"""Fingerprints of a multi-step job's folders, so a rerun reuses a step's
outputs only when they were made from the same inputs.

Each step folder holds ``fingerprint.json``: the digest of what produced it
(options, config, and the digests of the steps it read). A rerun whose
inputs differ clears the folder (with a warning) and redoes the step; since
a step's digest includes its inputs' digests, every step downstream of a
change is redone too. Without this, a resumable writer that skips existing
files would keep, say, pseudo masks of another τ with exit code 0.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import os.path as osp
import shutil
from typing import Any, Callable, Dict, Optional, Sequence

from .io import atomic_write_text

FINGERPRINT_FILE = 'fingerprint.json'


def digest(payload: Any) -> str:
    """sha256 of ``payload`` as canonical json (keys sorted, other objects
    by ``str``)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def config_digest(cfg, ignore=('experiment_name', )) -> str:
    """:func:`digest` of an mmengine config without the keys that differ
    between identical runs (the timestamped experiment name)."""
    return digest({k: v for k, v in cfg.to_dict().items() if k not in ignore})


def recorded_fingerprint(folder: str) -> Optional[str]:
    """The fingerprint stored in ``folder``, or None."""
    path = osp.join(folder, FINGERPRINT_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f).get('fingerprint')


def refresh_step(folder: str, fingerprint: str, step: str) -> bool:
    """Make ``folder`` the home of outputs made from ``fingerprint``.

    A folder with another recorded fingerprint (or with files but no
    record) is removed with a warning; then the record is written. Call it
    on one process (rank 0) before the step writes anything.

    Returns:
        True when the folder already belonged to ``fingerprint`` (its files
        may be reused), False when the step starts afresh.
    """
    from mmengine.logging import print_log
    recorded = recorded_fingerprint(folder)
    if recorded == fingerprint:
        return True
    if osp.isdir(folder) and os.listdir(folder):
        reason = ('was made from other inputs'
                  if recorded else f'has no {FINGERPRINT_FILE}')
        print_log(
            f'{step}: {folder} {reason}; clearing it and running the step '
            'again',
            logger='current',
            level=logging.WARNING)
        shutil.rmtree(folder)
    os.makedirs(folder, exist_ok=True)
    atomic_write_text(
        osp.join(folder, FINGERPRINT_FILE),
        json.dumps(dict(step=step, fingerprint=fingerprint), indent=2) + '\n')
    return False


#: Per-item input record of a step folder (see :func:`refresh_items`).
ITEMS_FILE = 'inputs.json'


def refresh_items(folder: str, states: Dict[str, Any], step: str,
                  outputs: Callable[[str], Sequence[str]]) -> Dict[str, str]:
    """Per-item reuse inside a step folder: remove ``outputs(item)`` of
    every item whose input state (``states[item]``, e.g.
    :func:`~bana_mm.utils.io.file_state` of its files) differs from the
    one recorded in ``folder/inputs.json`` or that left an empty output,
    log them, and record the new states. Call it on rank 0 after
    :func:`refresh_step`.

    Returns:
        ``{item: why}`` of the items whose outputs were removed.
    """
    from mmengine.logging import print_log
    path = osp.join(folder, ITEMS_FILE)
    before: Dict[str, Any] = {}
    if osp.isfile(path):
        with open(path) as f:
            before = json.load(f)
    redo = {}
    for item, state in states.items():
        existing = [p for p in outputs(item) if osp.isfile(p)]
        empty = [p for p in existing if osp.getsize(p) == 0]
        if not existing or (before.get(item) == state and not empty):
            continue
        redo[item] = ('no record of its inputs' if item not in before else
                      'its input files changed' if before[item] != state else
                      f'{empty[0]} is empty (0 bytes)')
        for file in existing:
            os.unlink(file)
    if redo:
        shown = ', '.join(f'{k} ({v})' for k, v in list(redo.items())[:10])
        more = f' ... ({len(redo)} in all)' if len(redo) > 10 else ''
        print_log(
            f'{step}: redoing {len(redo)} item(s) whose inputs changed: '
            f'{shown}{more}',
            logger='current',
            level=logging.WARNING)
    os.makedirs(folder, exist_ok=True)
    atomic_write_text(path, json.dumps(states, indent=1) + '\n')
    return redo
