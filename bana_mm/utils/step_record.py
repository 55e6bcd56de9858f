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
from typing import Any, Optional

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
