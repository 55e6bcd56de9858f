"""Timing and profiling helpers shared by ``tools/benchmarks``.

Times come from :mod:`torch.utils.benchmark` (``Timer`` synchronises CUDA and
sets the thread count; ``Measurement`` gives median / IQR); operator tables,
named regions and the peak of allocated memory come from
:mod:`torch.profiler`. Plain torch, no project imports.
"""
from __future__ import annotations

import contextlib
import os
import statistics
from typing import (Callable, Dict, Iterable, Iterator, List, Mapping,
                    Optional, Sequence, Tuple)

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.benchmark import Measurement, Timer
from torch.utils.benchmark.utils.common import TaskSpec

#: Prefix of the profiler name of a DataLoader ``__next__`` (batch wait).
DATALOADER_NEXT = 'enumerate(DataLoader)#'


# ---------------------------------------------------------------- timing
def make_timer(fn: Callable[[], object],
               description: str,
               label: str = '') -> Timer:
    """A ``Timer`` of ``fn()`` at the current torch thread count (``Timer``
    would otherwise time with one thread)."""
    return Timer(
        stmt='fn()',
        globals={'fn': fn},
        label=label,
        description=description,
        num_threads=torch.get_num_threads())


def interleaved(fns: Mapping[str, Callable[[], object]],
                rounds: int,
                warmup: int = 0,
                label: str = '') -> Dict[str, Measurement]:
    """Time each function once per round, alternating the order per round
    (A B, B A, ...) so that drift and load from other processes hit all
    alike. ``warmup`` rounds are not timed. The returned measurements keep
    the round order in ``times`` (see :func:`paired_ratio`)."""
    if rounds < 1:
        raise ValueError(f'rounds must be >= 1, got {rounds}')
    timers = {name: make_timer(fn, name, label) for name, fn in fns.items()}
    names = list(timers)
    runs: Dict[str, List[Measurement]] = {name: [] for name in names}
    for i in range(warmup + rounds):
        for name in (names if i % 2 == 0 else names[::-1]):
            m = timers[name].timeit(1)
            if i >= warmup:
                runs[name].append(m)
    return {name: Measurement.merge(runs[name])[0] for name in names}


def from_times(times: Sequence[float],
               description: str,
               label: str = '') -> Measurement:
    """A ``Measurement`` of per-step seconds measured elsewhere (e.g. the
    ``train/time`` history of mmengine's ``IterTimerHook``)."""
    if not len(times):
        raise ValueError(f'no times for {description!r}')
    spec = TaskSpec(
        stmt=description,
        setup='',
        label=label,
        description=description,
        num_threads=torch.get_num_threads())
    return Measurement(
        number_per_run=1, raw_times=[float(t) for t in times], task_spec=spec)


def paired_ratio(a: Measurement, b: Measurement) -> float:
    """Median of the per-round ratios a/b (least sensitive to load)."""
    return statistics.median(x / y for x, y in zip(a.times, b.times))


def summary(m: Measurement, unit: float = 1e3) -> str:
    """``median (IQR x)`` in ms (``unit=1``: seconds)."""
    return f'{m.median * unit:9.2f} (IQR {m.iqr * unit:.2f})'


def load_average() -> str:
    """1/5/15-minute load average, or 'n/a'."""
    try:
        return '/'.join(f'{x:.2f}' for x in os.getloadavg())
    except OSError:
        return 'n/a'


def mib(n: float) -> str:
    return f'{n / 2**20:.1f} MiB'


# --------------------------------------------------------------- profiler
def cpu_profile(memory: bool = False, **kwargs) -> profile:
    """A ``torch.profiler.profile`` of CPU (and CUDA if present) ops."""
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    return profile(activities=activities, profile_memory=memory, **kwargs)


def profile_calls(fn: Callable[[], object],
                  steps: int = 1,
                  memory: bool = False,
                  warmup: int = 1) -> profile:
    """Profile ``steps`` calls of ``fn`` after ``warmup`` traced but
    discarded calls; each call is a ``ProfilerStep#`` span."""
    schedule = torch.profiler.schedule(
        wait=0, warmup=warmup, active=steps, repeat=1)
    with cpu_profile(memory=memory, schedule=schedule) as prof:
        for _ in range(warmup + steps):
            fn()
            prof.step()
    return prof


def peak_allocated(prof: profile, device: torch.device) -> int:
    """Peak of the bytes allocated (net of frees) on ``device`` during a
    profile taken with ``profile_memory=True``, over what was allocated
    when it started: the allocator's high-water mark of the profiled code,
    free of the noise of the process RSS."""
    kind = DeviceType.CUDA if device.type == 'cuda' else DeviceType.CPU
    events = sorted((e for e in prof.profiler.kineto_results.events()
                     if e.name() == '[memory]' and e.device_type() == kind),
                    key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def saved_tensor_bytes(forward: Callable[[], object],
                       module: torch.nn.Module) -> int:
    """Bytes of the distinct storages autograd saves for backward during
    ``forward()`` (``module``'s parameters and buffers excluded): the
    activation memory held at the end of the forward pass, exact."""
    storages: Dict[int, int] = {}
    params = {
        t.untyped_storage().data_ptr()
        for t in list(module.parameters()) + list(module.buffers())
    }

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(n for ptr, n in storages.items() if ptr not in params)


@contextlib.contextmanager
def labelled(targets: Iterable[Tuple[object, str, str]]) -> Iterator[None]:
    """Run ``obj.attr(...)`` inside ``record_function(label)`` for each
    ``(obj, attr, label)`` while the context is open (restored on exit), so
    the profiler reports the region by name. Works for bound methods of
    instances (hooks, modules' ``forward``) and module-level functions."""
    saved = []

    def wrap(fn, label):

        def wrapper(*args, **kwargs):
            with record_function(label):
                return fn(*args, **kwargs)

        return wrapper

    try:
        for obj, attr, label in targets:
            had_own = attr in vars(obj) if hasattr(obj, '__dict__') else True
            fn = getattr(obj, attr)
            saved.append((obj, attr, fn, had_own))
            setattr(obj, attr, wrap(fn, label))
        yield
    finally:
        for obj, attr, fn, had_own in reversed(saved):
            if had_own:
                setattr(obj, attr, fn)
            else:
                delattr(obj, attr)


def region_ms(prof: profile, steps: int) -> Dict[str, Tuple[float, float]]:
    """{name: (inclusive CPU ms per step, calls per step)} of every event
    (record_function labels and ops) of a profile over ``steps`` steps;
    DataLoader waits are summed under :data:`DATALOADER_NEXT`."""
    out: Dict[str, Tuple[float, float]] = {}
    for e in prof.key_averages():
        key = DATALOADER_NEXT if e.key.startswith(DATALOADER_NEXT) else e.key
        ms, calls = out.get(key, (0.0, 0.0))
        out[key] = (ms + e.cpu_time_total / 1e3 / steps,
                    calls + e.count / steps)
    return out


def step_ms(prof: profile) -> float:
    """Mean wall time (ms) of the ``ProfilerStep#`` spans of a profile."""
    spans = [
        e.cpu_time_total for e in prof.events()
        if e.name.startswith('ProfilerStep')
    ]
    if not spans:
        raise ValueError('the profile has no ProfilerStep# span; call '
                         'prof.step() after each step')
    return statistics.fmean(spans) / 1e3


def op_diff_table(a: profile,
                  b: profile,
                  steps_a: int,
                  steps_b: int,
                  names: Tuple[str, str] = ('A', 'B'),
                  top: int = 15) -> str:
    """The ``aten::`` ops whose self CPU time per step differs most between
    two profiles, with their calls per step."""

    def per_op(prof, steps):
        return {
            e.key: (e.self_cpu_time_total / 1e3 / steps, e.count / steps)
            for e in prof.key_averages() if e.key.startswith('aten::')
        }

    pa, pb = per_op(a, steps_a), per_op(b, steps_b)
    keys = sorted(
        set(pa) | set(pb),
        key=lambda k: -abs(pa.get(k, (0, 0))[0] - pb.get(k, (0, 0))[0]))[:top]
    lines = [
        f'  {"op (self CPU ms / step, calls / step)":44s}'
        f'{names[0]:>18s}{names[1]:>18s}{"diff ms":>10s}'
    ]
    for k in keys:
        (ta, ca), (tb, cb) = pa.get(k, (0.0, 0.0)), pb.get(k, (0.0, 0.0))
        lines.append(f'  {k[:44]:44s}{ta:10.1f} ({ca:4.0f}){tb:10.1f} '
                     f'({cb:4.0f}){ta - tb:10.1f}')
    return '\n'.join(lines)


def region_table(rows: Sequence[Tuple],
                 names: Optional[Tuple[str, str]] = None) -> str:
    """Rows ``(name, ms A, ms B[, calls A, calls B])`` (None: not in that
    path) with the difference of the times, as text."""
    names = names or ('A', 'B')
    lines = [
        f'  {"region (inclusive ms / step)":40s}{names[0]:>12s}'
        f'{names[1]:>12s}{"diff":>10s}{"calls/step":>12s}'
    ]
    for name, a, b, *calls in rows:
        cell = lambda v: f'{v:12.1f}' if v is not None else f'{"-":>12s}'  # noqa
        count = '' if not calls else '{:>12s}'.format(' / '.join(
            '-' if c is None else f'{c:g}' for c in calls))
        lines.append(f'  {name[:40]:40s}{cell(a)}{cell(b)}'
                     f'{(a or 0.0) - (b or 0.0):10.1f}{count}')
    return '\n'.join(lines)
