"""One rule for non-finite numbers (issue 20.4): a NaN or inf in a loss,
in weights or in an image's maps stops what uses it, with an error naming
where it is; it never becomes an all-background label or a saved model."""
from __future__ import annotations

from typing import Any, List, Mapping

import numpy as np
import torch


class NonFiniteError(ValueError):
    """NaN or inf where a finite number is needed; names the place."""


def non_finite(named: Mapping[str, Any]) -> List[str]:
    """``"name (2 NaN, 1 inf of 40 values)"`` for every floating-point
    tensor / array / number of ``named`` holding a NaN or inf, in order;
    other entries (integers, strings) are not checked."""
    found = []
    for name, value in named.items():
        if isinstance(value, torch.Tensor):
            if not value.is_floating_point():
                continue
            value = value.detach().float().cpu().numpy()
        array = np.asarray(value)
        if array.dtype.kind not in 'fc' or bool(np.isfinite(array).all()):
            continue
        nan = int(np.isnan(array).sum())
        inf = int(array.size - nan - np.isfinite(array).sum())
        counts = ', '.join(f'{n} {what}'
                           for n, what in ((nan, 'NaN'), (inf, 'inf')) if n)
        found.append(f'{name} ({counts} of {array.size} values)')
    return found


def check_finite(named: Mapping[str, Any], where: str, limit: int = 8) -> None:
    """Raise :class:`NonFiniteError` ``"<where>: non-finite values in ..."``
    listing the entries of ``named`` that hold NaN or inf."""
    bad = non_finite(named)
    if bad:
        more = f' ... ({len(bad)} in all)' if len(bad) > limit else ''
        raise NonFiniteError(f'{where}: non-finite values in ' +
                             '; '.join(bad[:limit]) + more)
