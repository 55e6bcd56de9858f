"""File I/O shared by the project: atomic writes (a reader never sees a
half-written file), split lists, and cheap checks of image files."""
from __future__ import annotations

import logging
import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator, List, Optional, Tuple


# ------------------------------------------------------------ atomic writes
def current_umask() -> int:
    """The process umask, read without changing it where Linux allows
    (``/proc/self/status``); elsewhere set and restored at once."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode(path: str) -> int:
    """The mode ``open(path, 'w')`` would give: an existing file keeps its
    permissions, a new one gets ``0o666`` minus the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


@contextmanager
def atomic_open(path: str) -> Iterator[BinaryIO]:
    """Open a temp file beside ``path`` for binary writing; on success it is
    synced and renamed to ``path``, on error removed.

    ``mkstemp`` creates the temp file with mode 0600; it is given the mode a
    plain ``open`` would (umask respected, e.g. 0644) before the rename.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix='.' + osp.basename(path), suffix='.tmp')
    try:
        os.fchmod(fd, _new_file_mode(path))
        with os.fdopen(fd, 'wb') as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if osp.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and not err.filename:
            # e.g. ENOSPC from write(): name the file it was for
            raise OSError(err.errno, err.strerror or str(err), path) from err
        raise


def atomic_write_bytes(path: "str | os.PathLike", data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode('utf-8'))


# ------------------------------------------------------------ folder locks
#: The lock file of an output folder (``fcntl.flock``; see folder_lock).
LOCK_FILE = '.bana_mm.lock'


class FolderLockedError(RuntimeError):
    """Another process is writing to the same output folder."""


@contextmanager
def folder_lock(folder: str, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (``folder/.bana_mm.lock``,
    ``fcntl.flock``) while ``what`` writes there.

    A second writer stops at once with :class:`FolderLockedError` naming
    the folder and the holder (pid, host, start time). The kernel releases
    the lock when its process ends, so a crashed or killed run never leaves
    it stuck; the file itself stays (removing it would race).
    """
    import fcntl
    import socket
    import time
    path = osp.join(folder, LOCK_FILE)
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
    except OSError as err:
        raise type(err)(err.errno, f'the {what} cannot write to {folder} '
                        f'({err.strerror or err})') from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 512).decode('utf-8', 'replace').strip()
            raise FolderLockedError(
                f'{folder} is being written by another run '
                f'({holder or "holder unknown"}; lock {path}); wait for it '
                f'to end or choose another folder for this {what}') from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f'{what}, pid {os.getpid()} on {socket.gethostname()}, '
            f'since {time.strftime("%Y-%m-%d %H:%M:%S")}'.encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


# -------------------------------------------------------------- split lists
def under_root(data_root: Optional[str], path: str) -> str:
    """``path`` joined to ``data_root`` unless it is absolute (or there is
    no root), as mmengine datasets resolve ``ann_file``."""
    if osp.isabs(path) or not data_root:
        return path
    return osp.join(data_root, path)


class SplitIdError(ValueError):
    """A split list line that is not an image id; names the file and line."""


def id_problem(img_id: str) -> Optional[str]:
    """Why ``img_id`` cannot be an image id, or None.

    An id is a file name inside the data root's folders (``2007_000032``),
    never a path: no ``/`` or ``\\``, not ``.`` / ``..``, no invisible
    character. Outputs are named after ids, so this rule also keeps every
    output inside its folder.
    """
    if img_id in ('', '.', '..'):
        return 'is not a file name'
    if '/' in img_id or '\\' in img_id:
        return ('contains a path separator: an id is a file name inside the '
                'data root, not a path (sub-folders and absolute paths are '
                'not allowed)')
    hidden = sorted({f'U+{ord(c):04X}' for c in img_id if not c.isprintable()})
    if hidden:
        return f'contains invisible character(s) {", ".join(hidden)}'
    return None


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def _split_text(path: str) -> str:
    """The text of a split list; a UTF-8 byte-order mark is dropped with a
    warning, bytes that are not UTF-8 are an error naming the file."""
    import codecs

    from mmengine.logging import print_log
    with open(path, 'rb') as f:
        raw = f.read()
    if raw.startswith(codecs.BOM_UTF8):
        print_log(
            f'{path} starts with a UTF-8 byte-order mark (U+FEFF); it is '
            'not part of the first id and was ignored',
            logger='current',
            level=logging.WARNING)
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b'\n') + 1
        raise SplitIdError(f'{path}, line {line}: not UTF-8 text '
                           f'({err.reason} at byte {err.start})') from None


def read_split(path: str) -> List[str]:
    """Image ids of a split list, one per line: the id, optionally followed
    by one integer (VOC's per-class lists: ``2007_000032  1``).

    Every id must pass :func:`id_problem`. An id listed twice is kept once,
    with one warning naming the file and the ids (a repeated id would be
    trained, labelled and scored twice).

    Raises:
        FileNotFoundError naming ``path``; ValueError (no id at all);
        :class:`SplitIdError` naming ``path``, the line and the problem
        (an id with a space, a path, an invisible character).
    """
    from mmengine.logging import print_log
    if not osp.isfile(path):
        raise FileNotFoundError(f'split list {path} not found')
    ids = []
    for number, line in enumerate(_split_text(path).split('\n'), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) > 2 or (len(tokens) == 2 and not _is_int(tokens[1])):
            raise SplitIdError(
                f'{path}, line {number}: {line.strip()!r} is not one image '
                'id (optionally followed by an integer flag); an id cannot '
                'contain a space')
        problem = id_problem(tokens[0])
        if problem:
            raise SplitIdError(
                f'{path}, line {number}: id {tokens[0]!r} {problem}')
        ids.append(tokens[0])
    if not ids:
        raise ValueError(f'split list {path} is empty: it lists no image id')
    unique = list(dict.fromkeys(ids))
    if len(unique) != len(ids):
        seen, repeated = set(), []
        for img_id in ids:
            if img_id in seen and img_id not in repeated:
                repeated.append(img_id)
            seen.add(img_id)
        shown = ', '.join(repeated[:10])
        more = f' and {len(repeated) - 10} more' if len(repeated) > 10 else ''
        print_log(
            f'{path}: {len(repeated)} id(s) listed more than once, '
            f'each kept once: {shown}{more}',
            logger='current',
            level=logging.WARNING)
    return unique


def output_path(folder: str, name: str, suffix: str) -> str:
    """``folder/<name><suffix>`` for an output named after an image id;
    refuses a ``name`` that :func:`id_problem` rejects, so an output never
    lands outside ``folder`` (nor on an input given by path)."""
    problem = id_problem(name)
    if problem:
        raise SplitIdError(f'refusing to write {name + suffix!r} under '
                           f'{folder}: the id {problem}')
    return osp.join(folder, name + suffix)


def file_state(path: str) -> str:
    """``"<size> bytes, mtime <ns>"`` of a file, or ``"missing"``: a cheap
    content fingerprint (no read) for deciding whether outputs made from
    it are still valid."""
    try:
        st = os.stat(path)
    except OSError:
        return 'missing'
    return f'{st.st_size} bytes, mtime {st.st_mtime_ns}'


# ------------------------------------------------------------- image files
class ImageReadError(OSError):
    """An image file that cannot be read or decoded; names the file."""


def image_size(path: str) -> Optional[Tuple[int, int]]:
    """``(width, height)`` of an image as OpenCV / mmcv decode it (EXIF
    rotation applied), read from the file header only; None if the header
    cannot be read (the loading pipeline then reports the file)."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            width, height = image.size
            try:
                orientation = image.getexif().get(0x0112, 1)
            except Exception:  # malformed EXIF: cv2 ignores it too
                orientation = 1
    except Exception:
        return None
    # EXIF orientations 5-8 are transposed (cv2.IMREAD_COLOR applies them).
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def image_file_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be used as an image (decoded as mmcv's
    ``LoadImageFromFile`` does), or None if it decodes."""
    import cv2
    import numpy as np
    if not osp.isfile(path):
        return 'does not exist'
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        return f'cannot be read ({err.strerror or err})'
    if data.size == 0:
        return 'is empty (0 bytes)'
    try:
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:
        decoded = None
    if decoded is None:
        return f'cannot be decoded as an image ({data.size} bytes)'
    return None


def explain_image_failure(path: str, err: BaseException) -> None:
    """Raise :class:`ImageReadError` naming ``path`` if the image file is
    what broke the pipeline (``err``: the pipeline's exception); return
    quietly otherwise so the caller re-raises ``err``."""
    if isinstance(err, ImageReadError):
        return
    problem = image_file_problem(path)
    if problem is not None:
        raise ImageReadError(f'image {path} {problem}') from err
