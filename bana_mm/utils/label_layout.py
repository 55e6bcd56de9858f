"""Where stage-2 label files live (``OUT/Ycrf/<id>.png``,
``OUT/Yret/<id>.png``, ``OUT/vis/<id>.jpg``, ``OUT/fingerprint.json``), which
are finished (SPEC §2: written atomically, so an image is done once its final
file exists), and the out-dir checks run before labelling."""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Iterable, List, Optional, Sequence, Tuple

from .io import output_path

#: The two pseudo-label maps, in the order they are written (Ycrf last).
MAPS = ('Ycrf', 'Yret')


def image_stem(data_info: dict) -> str:
    """Output name of an image: its file name without suffix."""
    return osp.splitext(osp.basename(data_info['img_path']))[0]


def label_path(out_dir: str, kind: str, stem: str) -> str:
    """``OUT/<kind>/<stem>.png`` (a ``stem`` that is not a file name is
    refused: :func:`~bana_mm.utils.io.output_path`)."""
    return output_path(osp.join(out_dir, kind), stem, '.png')


def remove_stale_temp_files(out_dir: str) -> List[str]:
    """Delete the temp files a killed run left behind (never read: results
    only appear under their final name, by rename)."""
    removed = []
    for sub in MAPS + ('vis', ):
        folder = osp.join(out_dir, sub)
        if not osp.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.startswith('.') and name.endswith('.tmp'):
                os.unlink(osp.join(folder, name))
                removed.append(name)
    return removed


def is_done(out_dir: str, stem: str, with_yret: bool = True) -> bool:
    """Whether the label files of ``stem`` are all written (a 0-byte file
    is not: labels are written atomically, so it is not stage 2's)."""
    kinds = MAPS if with_yret else MAPS[:1]
    return all(
        osp.isfile(p) and osp.getsize(p) > 0
        for p in (label_path(out_dir, k, stem) for k in kinds))


#: What produced the labels of an out-dir (checkpoint hash, options,
#: dataset), written before the first label; resume only when it matches.
FINGERPRINT = 'fingerprint.json'


def read_fingerprint(out_dir: str) -> Optional[dict]:
    """``OUT/fingerprint.json``; None when absent, ``{}`` when unreadable
    (it then differs from any run)."""
    path = osp.join(out_dir, FINGERPRINT)
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) else {}


#: The record files a stage-2 run writes into its out-dir, besides labels.
RECORD_FILES = ('instances_ycrf.json', 'instances_yret.json', 'run.json',
                'metrics.json', FINGERPRINT)


def image_files(out_dir: str, stem: str) -> List[str]:
    """Every file stage 2 may write for image ``stem``: its label PNGs and
    its overlay sheet."""
    return [label_path(out_dir, k, stem) for k in MAPS] + \
        [output_path(osp.join(out_dir, 'vis'), stem, '.jpg')]


def has_label_files(out_dir: str) -> bool:
    """Whether ``out_dir`` holds any finished label PNG."""
    for kind in MAPS:
        folder = osp.join(out_dir, kind)
        if osp.isdir(folder) and any(
                n.endswith('.png') for n in os.listdir(folder)):
            return True
    return False


def remove_outputs(out_dir: str, stems: Iterable[str],
                   with_records: bool) -> Tuple[List[str], List[str]]:
    """Delete what stage 2 wrote in ``out_dir`` and nothing else: the files
    of ``stems`` (:func:`image_files`), temp files, the record files when
    ``with_records`` (the folder has a fingerprint, so they are stage 2's),
    and the ``Ycrf`` / ``Yret`` / ``vis`` folders left empty.

    Returns (removed, kept): the paths deleted and the other files found in
    those folders (a user's own files), left in place.
    """
    removed = remove_stale_temp_files(out_dir)
    for stem in stems:
        for path in image_files(out_dir, stem):
            if osp.isfile(path):
                os.unlink(path)
                removed.append(path)
    if with_records:
        for name in RECORD_FILES:
            path = osp.join(out_dir, name)
            if osp.isfile(path):
                os.unlink(path)
                removed.append(path)
    kept = []
    for sub in MAPS + ('vis', ):
        folder = osp.join(out_dir, sub)
        if not osp.isdir(folder):
            continue
        left = sorted(os.listdir(folder))
        kept += [osp.join(folder, name) for name in left]
        if not left:
            os.rmdir(folder)
    return removed, kept


def check_writable(folders: Sequence[str]) -> None:
    """Create ``folders`` and a temp file in each; raise ``PermissionError``
    / ``OSError`` naming the first folder that cannot be written."""
    import tempfile
    for folder in folders:
        try:
            os.makedirs(folder, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                    dir=folder, prefix='.write_test', suffix='.tmp'):
                pass
        except OSError as err:
            raise type(err)(
                err.errno, f'stage 2 cannot write to {folder} '
                f'({err.strerror or err}); choose a writable --out-dir'
            ) from err
