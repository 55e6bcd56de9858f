"""A bounded process pool for the CPU half of stage 2 (DenseCRF, retrieval,
GrabCut, file writes), or inline execution with ``workers=0``.

Workers are spawned with one torch thread each; at most ``2 * workers``
jobs are in flight, so memory stays bounded whatever the dataset size.
Exceptions are returned per job, so one bad image never stops a run. A
worker that dies (killed, out of memory) breaks a ``ProcessPoolExecutor``
and every job in flight with it: the pool then starts afresh, reruns the
jobs that were running one at a time to find the one that kills its worker
(reported as :class:`WorkerDiedError` naming it), and resubmits the rest.
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
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, List, Optional, Sequence, Tuple

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


class WorkerDiedError(RuntimeError):
    """The worker process running a job died (killed, out of memory)."""


def _tracked(job: Tuple[Callable, object, str, str]):
    """Run ``fn(arg)`` in a worker with a marker file ``<folder>/<pid>``
    holding the job's name while it runs (left behind if the worker dies:
    the pool then knows which jobs were running)."""
    fn, arg, name, folder = job
    marker = os.path.join(folder, str(os.getpid()))
    with open(marker, 'w') as f:
        f.write(name)
    try:
        return fn(arg)
    finally:
        os.unlink(marker)


class _Job:
    """A submitted job: its context, what to run, its name, its future."""

    def __init__(self, context, fn, arg, name: str) -> None:
        self.context, self.fn, self.arg, self.name = context, fn, arg, name
        self.future: Optional[Future] = None


def _lost(job: _Job) -> bool:
    """Whether ``job`` has no result because its pool broke."""
    future = job.future
    if future is None or future.cancelled() or not future.done():
        return True
    return isinstance(future.exception(), BrokenProcessPool)


class WorkerPool:
    """A process pool (``workers`` > 0) or inline execution, with at most
    ``2 * workers`` jobs in flight so memory stays bounded."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = None
        self.markers = None
        if workers > 0:
            import tempfile
            self.markers = tempfile.mkdtemp(prefix='bana_mm_pool_')
            self.pool = self._new_pool()
        self.pending: deque = deque()

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing as mp
        return ProcessPoolExecutor(
            self.workers,
            mp_context=mp.get_context('spawn'),
            initializer=_worker_init,
            initargs=(os.getpid(), ))

    def _start(self, job: _Job) -> _Job:
        job.future = self.pool.submit(
            _tracked, (job.fn, job.arg, job.name, self.markers))
        return job

    def submit(self,
               fn,
               arg,
               context,
               name: Optional[str] = None) -> List[Tuple[object, object]]:
        """Run or queue ``fn(arg)``; return finished (context, result or
        exception) pairs. ``name`` (default ``str(context)``) names the job
        if its worker dies."""
        if self.pool is None:
            return [(context, call_safely(fn, arg))]
        job = _Job(context, fn, arg, str(context) if name is None else name)
        try:
            self.pending.append(self._start(job))
        except BrokenProcessPool:  # broke since the last result was read
            self.pending.append(job)
            self._recover()
        done = []
        while len(self.pending) > 2 * self.workers:
            done.append(self._pop())
        return done

    def _pop(self):
        job = self.pending[0]
        try:
            result = job.future.result()
        except BrokenProcessPool:
            self._recover()
            return self._pop()
        except Exception as err:  # reported per image by the caller
            result = err
        self.pending.popleft()
        return job.context, result

    def _recover(self) -> None:
        """After a worker died: a fresh pool; the jobs that were running
        are rerun alone, one at a time, so the one that kills its worker
        again is reported (:class:`WorkerDiedError`) and no other; the
        jobs that had not started are resubmitted."""
        running = set()
        for pid in os.listdir(self.markers):
            path = os.path.join(self.markers, pid)
            with open(path) as f:
                running.add(f.read())
            os.unlink(path)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = self._new_pool()
        broken = [job for job in self.pending if _lost(job)]
        for job in broken:
            if job.name in running:
                self._rerun_alone(job)
        for job in broken:
            if job.name not in running:
                self._start(job)

    def _rerun_alone(self, job: _Job) -> None:
        """Run ``job`` with nothing else in flight; if its worker dies
        again, it fails with :class:`WorkerDiedError` naming it."""
        self._start(job)
        if isinstance(job.future.exception(), BrokenProcessPool):
            for name in os.listdir(self.markers):
                os.unlink(os.path.join(self.markers, name))
            job.future = Future()
            job.future.set_exception(
                WorkerDiedError(
                    f'the worker process died (killed, or out of memory) '
                    f'while working on {job.name}'))
            self.pool.shutdown(wait=True)
            self.pool = self._new_pool()

    def drain(self) -> List[Tuple[object, object]]:
        return [self._pop() for _ in range(len(self.pending))]

    def map(self,
            fn,
            args: Sequence,
            name: Optional[Callable[[object], str]] = None) -> List[object]:
        """``fn`` of every arg (results or exceptions, in order);
        ``name(arg)`` names a job whose worker dies."""
        if self.pool is None:
            return [call_safely(fn, a) for a in args]
        results: List[object] = []
        for i, arg in enumerate(args):
            label = name(arg) if name is not None else f'job {i}'
            results += [r for _, r in self.submit(fn, arg, i, label)]
        return results + [r for _, r in self.drain()]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            import shutil
            shutil.rmtree(self.markers, ignore_errors=True)

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
