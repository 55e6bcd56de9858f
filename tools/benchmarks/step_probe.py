"""Run a training script unchanged and record when each optimizer step ends.

    python tools/benchmarks/step_probe.py --steps 15 --out T.json \
        [--profile-from 6 --profile-steps 3] \
        [--no-cuda --empty-weights vgg_caffe.pth --loader-workers 2] \
        -- SCRIPT [SCRIPT ARGS ...]

The script runs in this process (``runpy``, as ``__main__``, from its own
folder on ``sys.path``) with a global optimizer step post-hook
(``torch.optim.optimizer.register_optimizer_step_post_hook``): the time
between the ends of two steps is one whole training iteration (data wait,
forward, backward, step, logging) of any training loop, ours (mmengine's
Runner via tools/train.py) or someone else's. After ``--steps`` steps the
times (and, with ``--profile-from``, the per-op table of a torch.profiler
run over ``--profile-steps`` steps) go to ``--out`` as JSON and the process
ends at once (no validation, no checkpoint).

Options that adapt a GPU-only script to a CPU without editing it
(``authors_step.py`` uses them for the authors' BANA scripts):
``--no-cuda`` makes ``Tensor.cuda`` / ``Module.cuda`` return the CPU
object; ``--empty-weights NAME`` makes ``torch.load`` of a file called
NAME return ``{}`` (random initial weights where the script loads
ImageNet weights with ``strict=False``); ``--loader-workers N`` sets
every DataLoader's ``num_workers`` to N and ``pin_memory`` to False.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import resource
import runpy
import sys
import time
from typing import Dict, List, Optional, Sequence

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=int, required=True)
    parser.add_argument('--out', required=True, help='JSON file to write')
    parser.add_argument(
        '--profile-from',
        type=int,
        default=None,
        help='profile from the end of this step on')
    parser.add_argument('--profile-steps', type=int, default=3)
    parser.add_argument('--no-cuda', action='store_true')
    parser.add_argument('--empty-weights', default=None, metavar='NAME')
    parser.add_argument('--loader-workers', type=int, default=None)
    parser.add_argument(
        'command', nargs=argparse.REMAINDER, help='-- SCRIPT [ARGS]')
    args = parser.parse_args(argv)
    if args.command[:1] == ['--']:
        args.command = args.command[1:]
    if not args.command:
        parser.error('give the training script after --')
    if args.steps < 2:
        parser.error('--steps must be >= 2 (a step time needs two ends)')
    if args.profile_from is not None and (args.profile_from < 1
                                          or args.profile_from +
                                          args.profile_steps > args.steps):
        parser.error('the profiled steps must lie inside --steps')
    return args


def op_table(prof, steps: int) -> Dict[str, List[float]]:
    """{event: [self CPU ms per step, CPU ms per step incl. children,
    calls per step]} of every op and labelled region of a profile."""
    return {
        e.key: [
            e.self_cpu_time_total / 1e3 / steps,
            e.cpu_time_total / 1e3 / steps, e.count / steps
        ]
        for e in prof.key_averages()
    }


def adapt_to_cpu(args: argparse.Namespace) -> None:
    """The ``--no-cuda`` / ``--empty-weights`` / ``--loader-workers``
    patches (see the module docstring)."""
    if args.no_cuda:
        torch.Tensor.cuda = lambda self, *a, **k: self
        torch.nn.Module.cuda = lambda self, *a, **k: self
    if args.empty_weights:
        load = torch.load

        def load_or_empty(f, *a, **k):
            if isinstance(f, (str, os.PathLike)) and \
                    osp.basename(str(f)) == args.empty_weights:
                print(
                    f'step_probe: {f} -> {{}} (random initial weights)',
                    flush=True)
                return {}
            return load(f, *a, **k)

        torch.load = load_or_empty
    if args.loader_workers is not None:
        loader_init = torch.utils.data.DataLoader.__init__
        workers = args.loader_workers

        def init(self, *a, **k):
            loader_init(self, *a, **k)
            # set after __init__: its checks see the script's own values
            object.__setattr__(self, 'num_workers', workers)
            object.__setattr__(self, 'pin_memory', False)
            if workers == 0:
                object.__setattr__(self, 'persistent_workers', False)

        torch.utils.data.DataLoader.__init__ = init


class StepClock:
    """Optimizer step post-hook: the end time of each step, a profiler over
    the chosen steps, and the JSON + exit after the last one."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ends: List[float] = []
        self.faults: List[int] = []
        self.prof = None
        self.ops: Dict[str, List[float]] = {}

    def __call__(self, optimizer, *_) -> None:
        self.ends.append(time.perf_counter())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.faults.append(usage.ru_minflt + usage.ru_majflt)
        n, args = len(self.ends), self.args
        if args.profile_from is not None:
            if n == args.profile_from:
                self.prof = torch.profiler.profile(
                    activities=[torch.profiler.ProfilerActivity.CPU])
                self.prof.__enter__()
            elif n == args.profile_from + args.profile_steps:
                self.prof.__exit__(None, None, None)
                self.ops = op_table(self.prof, args.profile_steps)
        if n == args.steps:
            self.finish()

    def finish(self) -> None:
        times = [b - a for a, b in zip(self.ends, self.ends[1:])]
        faults = [b - a for a, b in zip(self.faults, self.faults[1:])]
        result = dict(
            command=self.args.command,
            step_seconds=dict(zip(range(2,
                                        len(times) + 2), times)),
            page_faults=dict(zip(range(2,
                                       len(faults) + 2), faults)),
            threads=torch.get_num_threads(),
            torch=torch.__version__,
            ops=self.ops,
            profiled_steps=(None if self.args.profile_from is None else [
                self.args.profile_from + 1, self.args.profile_from +
                self.args.profile_steps
            ]))
        tmp = self.args.out + '.part'
        with open(tmp, 'w') as f:
            json.dump(result, f)
        os.replace(tmp, self.args.out)
        sys.stdout.flush()
        sys.stderr.flush()
        # end now: the script would go on to validate / save
        os._exit(0)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    adapt_to_cpu(args)
    register_optimizer_step_post_hook(StepClock(args))
    script = osp.abspath(args.command[0])
    sys.argv = [script] + args.command[1:]
    sys.path.insert(0, osp.dirname(script))
    runpy.run_path(script, run_name='__main__')
    raise SystemExit(f'step_probe: {script} ended before step {args.steps}')


if __name__ == '__main__':
    main()
