"""A bounded process pool for the CPU half of stage 2 (DenseCRF, retrieval,
GrabCut, file writes), or inline execution with ``workers=0``.

Workers are spawned with one torch thread each; at most ``2 * workers``
jobs are in flight, so memory stays bounded whatever the dataset size.
Exceptions are returned per job, so one bad image never stops a run.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, List, Sequence, Tuple

import torch


def _worker_init() -> None:
    torch.set_num_threads(1)


class WorkerPool:
    """A process pool (``workers`` > 0) or inline execution, with at most
    ``2 * workers`` jobs in flight so memory stays bounded."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = None
        if workers > 0:
            import multiprocessing as mp
            self.pool = ProcessPoolExecutor(
                workers, mp_context=mp.get_context('spawn'),
                initializer=_worker_init)
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

