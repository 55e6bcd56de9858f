"""Atomic file writes: a reader never sees a half-written file."""
from __future__ import annotations

import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator


@contextmanager
def atomic_open(path: str) -> Iterator[BinaryIO]:
    """Open a temp file beside ``path`` for binary writing; on success it is
    synced and renamed to ``path``, on error removed."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + osp.basename(path),
                               suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: "str | os.PathLike", data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode('utf-8'))
