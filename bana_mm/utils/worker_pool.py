"""A bounded process pool for the CPU half of stage 2 (DenseCRF, retrieval,
GrabCut, file writes), or inline execution with ``workers=0``.

Workers are spawned with one torch thread each; at most ``2 * workers``
jobs are in flight, so memory stays bounded whatever the dataset size.
Exceptions are returned per job, so one bad image never stops a run.
Workers exit when their parent process dies (even by ``kill -9``): on Linux
the kernel sends them SIGKILL (``prctl(PR_SET_PDEATHSIG)``), elsewhere a
daemon thread notices the new parent pid within a second. With the workers
gone, multiprocessing's resource tracker sees EOF and exits too.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, List, Sequence, Tuple

import torch

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int, interval: float = 1.0) -> None:
    """End this process when ``parent`` is no longer its parent."""
    if sys.platform.startswith('linux'):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc / prctl: the thread
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(interval)

    if os.getppid() != parent:  # died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name='parent-watch', daemon=True).start()


def _worker_init(parent: int) -> None:
    torch.set_num_threads(1)
    _die_with_parent(parent)


class WorkerPool:
    """A process pool (``workers`` > 0) or inline execution, with at most
    ``2 * workers`` jobs in flight so memory stays bounded."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = None
        if workers > 0:
            import multiprocessing as mp
            self.pool = ProcessPoolExecutor(
                workers,
                mp_context=mp.get_context('spawn'),
                initializer=_worker_init,
                initargs=(os.getpid(), ))
        self.pending: deque = deque()

    def submit(self, fn, arg, context) -> List[Tuple[object, object]]:
        """Run or queue ``fn(arg)``; return finished (context, result or
        exception) pairs."""
        if self.pool is None:
            return [(context, call_safely(fn, arg))]
        self.pending.append((context, self.pool.submit(fn, arg)))
        done = []
        while len(self.pending) > 2 * self.workers:
            done.append(self._pop())
        return done

    def _pop(self):
        context, future = self.pending.popleft()
        try:
            return context, future.result()
        except Exception as err:  # reported per image by the caller
            return context, err

    def drain(self) -> List[Tuple[object, object]]:
        return [self._pop() for _ in range(len(self.pending))]

    def map(self, fn, args: Sequence) -> List[object]:
        if self.pool is None:
            return [call_safely(fn, a) for a in args]
        futures: List[Future] = [self.pool.submit(fn, a) for a in args]
        out = []
        for future in futures:
            try:
                out.append(future.result())
            except Exception as err:
                out.append(err)
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def __enter__(self) -> 'WorkerPool':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def call_safely(fn: Callable, arg):
    """``fn(arg)``, or the exception it raised."""
    try:
        return fn(arg)
    except Exception as err:
        return err
