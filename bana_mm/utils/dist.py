"""Distributed start-up that also works on CPU-only machines."""
from __future__ import annotations

import torch
import torch.distributed as torch_dist


def init_distributed(launcher: str, backend: str = 'nccl') -> None:
    """Initialise the process group of an mmengine ``launcher``.

    mmengine 0.10.7's ``init_dist('pytorch')`` calls
    ``torch.cuda.set_device`` unconditionally, which fails on a CPU-only
    torch. Without CUDA the default group is created here with gloo (from
    torchrun's environment); mmengine's Runner then finds it initialised and
    skips its own set-up. With CUDA this is mmengine's ``init_dist``.
    """
    if launcher == 'none' or torch_dist.is_initialized():
        return
    if torch.cuda.is_available():
        from mmengine.dist import init_dist
        init_dist(launcher, backend=backend)
    elif launcher == 'pytorch':
        torch_dist.init_process_group(backend='gloo')
    else:
        raise RuntimeError(f'launcher {launcher!r} needs CUDA on this '
                           'machine; use --launcher pytorch (torchrun)')
