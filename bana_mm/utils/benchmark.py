"""Helpers shared by the scripts of ``tools/benchmarks``.

Times come from :mod:`torch.utils.benchmark` (``Timer`` synchronises CUDA and
sets the thread count; ``Measurement`` gives median / IQR); operator tables,
named regions and the peak of allocated memory come from
:mod:`torch.profiler`; the peak resident size of a process from Linux
``/proc``. Every script prints one table (:func:`format_table`) under a
:func:`machine_line`, and has a ``--quick`` preset
(:func:`parse_with_quick`). Plain torch, no project imports.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import os.path as osp
import platform
import resource
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


def median_iqr(m: Measurement, unit: float = 1e3, digits: int = 1) -> str:
    """``median (IQR)`` of a measurement, in ms (``unit=1``: seconds)."""
    return f'{m.median * unit:.{digits}f} ({m.iqr * unit:.{digits}f})'


# ------------------------------------------------------------ command line
def parse_with_quick(
        parser: argparse.ArgumentParser,
        quick: Mapping[str, object],
        argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse ``argv`` with a ``--quick`` flag that makes ``quick`` the
    defaults (options given explicitly still win): a small run that checks
    the machinery in a minute, not a figure to quote."""

    def option(key: str, value: object) -> str:
        values = value if isinstance(value, (list, tuple)) else [value]
        return f'--{key.replace("_", "-")} ' + ' '.join(map(str, values))

    parser.add_argument(
        '--quick',
        action='store_true',
        help='smoke-test settings: ' +
        ', '.join(option(k, v) for k, v in quick.items()))
    known, _ = parser.parse_known_args(argv)
    if known.quick:
        parser.set_defaults(**quick)
    return parser.parse_args(argv)


def shared_dataset(name: str) -> Optional[str]:
    """``../shared/data/NAME`` beside the checkout (the real image sets of
    the development machines) if it is a folder, else None."""
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    path = osp.join(osp.dirname(repo), 'shared', 'data', name)
    return path if osp.isdir(path) else None


# ------------------------------------------------------------------ machine
def load_average() -> str:
    """1/5/15-minute load average, or 'n/a'."""
    try:
        return '/'.join(f'{x:.2f}' for x in os.getloadavg())
    except OSError:
        return 'n/a'


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else the platform's
    processor string."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """What a figure must be quoted with: torch, threads, CPU (and GPU),
    cores and the load average (1/5/15 min) now."""
    gpu = (f', GPU {torch.cuda.get_device_name(0)}'
           if torch.cuda.is_available() else '')
    threads = torch.get_num_threads()
    return (f'torch {torch.__version__}, {threads} '
            f'thread{"s" if threads != 1 else ""}, '
            f'{os.cpu_count()} cores ({cpu_model()}){gpu}, load '
            f'{load_average()}')


# ------------------------------------------------------------------- memory
def mib(n: float) -> float:
    """Bytes in MiB."""
    return n / 2**20


def rss_bytes() -> int:
    """Resident size of this process (Linux ``/proc/self/statm``)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak_rss() -> None:
    """Reset this process's peak resident size to its current one (Linux
    ``clear_refs`` 5), so that :func:`peak_rss_bytes` sees what follows."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def peak_rss_bytes() -> int:
    """Peak resident size since the last :func:`reset_peak_rss` (``VmHWM``;
    ``ru_maxrss`` of the whole run where ``/proc`` has none)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


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


def op_self_ms(prof: profile, steps: int) -> Dict[str, Tuple[float, float]]:
    """{op: (self CPU ms per step, calls per step)} of the ``aten::`` ops of
    a profile over ``steps`` steps."""
    return {
        e.key: (e.self_cpu_time_total / 1e3 / steps, e.count / steps)
        for e in prof.key_averages() if e.key.startswith('aten::')
    }


def largest_diffs(
    pa: Mapping[str, Tuple[float, float]],
    pb: Mapping[str, Tuple[float, float]],
    top: int = 10
) -> List[Tuple[str, Tuple[float, float], Tuple[float, float]]]:
    """The ``top`` ops of two :func:`op_self_ms` tables whose ms per step
    differ most: ``(op, (ms, calls) in a, in b)``, an op missing on one
    side counting 0 there."""
    zero = (0.0, 0.0)
    keys = sorted(
        set(pa) | set(pb),
        key=lambda k: (-abs(pa.get(k, zero)[0] - pb.get(k, zero)[0]), k))
    return [(k, tuple(pa.get(k, zero)), tuple(pb.get(k, zero)))
            for k in keys[:top]]


def op_diffs(
    a: profile,
    b: profile,
    steps_a: int,
    steps_b: int,
    top: int = 10
) -> List[Tuple[str, Tuple[float, float], Tuple[float, float]]]:
    """The ``top`` ``aten::`` ops whose self CPU time per step differs most
    between two profiles: ``(op, (ms, calls) per step in a, in b)``."""
    return largest_diffs(
        op_self_ms(a, steps_a), op_self_ms(b, steps_b), top=top)


# ------------------------------------------------------------------- tables
def format_table(header: Sequence[str],
                 rows: Iterable[Sequence[object]],
                 left: int = 1) -> str:
    """Rows of cells as aligned text under ``header``: the first ``left``
    columns aligned left, the others right; None prints as ``-``."""
    cells = [[str(h) for h in header]]
    cells += [['-' if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return '  '.join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = '  '.join('-' * w for w in widths)
    return '\n'.join([line(cells[0]), rule] + [line(r) for r in cells[1:]])
