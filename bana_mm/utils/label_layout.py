"""Where stage-2 label files live (``OUT/Ycrf/<id>.png``, ``OUT/Yret/<id>.png``,
``OUT/vis/<id>.jpg``) and which are finished (SPEC §2: written atomically, so
an image is done once its final file exists)."""
from __future__ import annotations

import os
import os.path as osp
from typing import List

#: The two pseudo-label maps, in the order they are written (Ycrf last).
MAPS = ('Ycrf', 'Yret')


def image_stem(data_info: dict) -> str:
    """Output name of an image: its file name without suffix."""
    return osp.splitext(osp.basename(data_info['img_path']))[0]


def label_path(out_dir: str, kind: str, stem: str) -> str:
    """``OUT/<kind>/<stem>.png``."""
    return osp.join(out_dir, kind, f'{stem}.png')


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
    """Whether the label files of ``stem`` are all written."""
    kinds = MAPS if with_yret else MAPS[:1]
    return all(osp.isfile(label_path(out_dir, k, stem)) for k in kinds)

