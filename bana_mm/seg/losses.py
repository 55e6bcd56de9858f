"""mmseg adapter of the stage-3 losses (paper §3.3, Table 3; SPEC §3).

The maths is :func:`bana_mm.core.nal.region_loss`; this module only makes it
a config-buildable loss for the heads of :mod:`bana_mm.seg.heads`. Only the
total is returned under a key containing ``loss`` (``loss_name``), so that
mmengine's ``parse_losses`` does not count the parts twice; the parts are
logged under keys without ``loss`` (e.g. ``nal_ce``, ``nal_wce``).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmseg.registry import MODELS
from torch import Tensor

from ..core.nal import IGNORE_INDEX, REGION_LOSS_MODES, poly_beta, region_loss


def pixel_accuracy(logits: Tensor,
                   labels: Tensor,
                   ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Percent of the non-ignored pixels whose label has the top score.

    The value of mmseg's ``accuracy(logits, labels, topk=1, ignore_index)``
    (shape (1,), same eps) at a fraction of its cost on full-resolution
    maps: one max and one gather over the classes instead of ``topk`` and
    two boolean gathers, no host sync and no autograd graph. A label tied
    with the top score counts as a hit (``topk`` breaks ties arbitrarily).

    Args:
        logits: (B, C, H, W) scores.
        labels: (B, H, W) class indices with ``ignore_index``.
    """
    with torch.no_grad():
        valid = labels != ignore_index
        safe = torch.where(valid, labels, torch.zeros_like(labels)).long()
        own = logits.gather(1, safe[:, None]).squeeze(1)
        hits = (own >= logits.amax(dim=1)) & valid
        eps = torch.finfo(torch.float32).eps
        return (hits.sum(dtype=torch.float32).reshape(1) + eps) * 100.0 / (
            valid.sum(dtype=torch.float32) + eps)


@MODELS.register_module()
class NoiseAwareLoss(nn.Module):
    """L = L_ce(S) + lambda * term(~S) on two pseudo-label maps (eq. 14).

    Args:
        mode: ``'nal'`` (eqs. 10-14), ``'ignore'`` (ignore ~S), ``'entropy'``
            (supplement eq. 4), ``'bootstrap'`` (supplement eqs. 6-7),
            ``'ce_crf'`` / ``'ce_ret'`` (plain CE on Ycrf / Yret).
        lam: lambda of eq. (14), 0.1 in the paper for every ~S term.
        tau: scale of the cosine classifier (only used if no ``cos`` is
            passed, see :func:`region_loss`).
        gamma: damping of sigma, eq. (12).
        detach_sigma: stop gradients through sigma (the authors do not).
        beta_power: power of the poly schedule of the bootstrapping beta.
        max_iters: iterations of that schedule; None reads the runner's
            ``max_iters`` from the message hub.
        loss_weight: multiplier of the total.
        loss_name: key of the total; must start with ``loss_``.
    """

    #: Heads check this flag to call the loss with both label maps.
    uses_two_maps = True

    def __init__(self,
                 mode: str = 'nal',
                 lam: float = 0.1,
                 tau: float = 20.0,
                 gamma: float = 7.0,
                 detach_sigma: bool = False,
                 beta_power: float = 0.9,
                 max_iters: Optional[int] = None,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_nal',
                 ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        if mode not in REGION_LOSS_MODES:
            raise ValueError(f'unknown NoiseAwareLoss mode {mode!r}; '
                             f'expected one of {REGION_LOSS_MODES}')
        if not loss_name.startswith('loss_'):
            raise ValueError(f'loss_name must start with "loss_", got '
                             f'{loss_name!r}')
        if lam < 0 or gamma < 0:
            raise ValueError(f'lam and gamma must be >= 0, got {lam}, {gamma}')
        self.mode = mode
        self.lam = float(lam)
        self.tau = float(tau)
        self.gamma = float(gamma)
        self.detach_sigma = bool(detach_sigma)
        self.beta_power = float(beta_power)
        self.max_iters = max_iters
        self.loss_weight = float(loss_weight)
        self.ignore_index = int(ignore_index)
        self._loss_name = loss_name
        #: sigma of the last call (B, H, W), detached, 0 outside ~S.
        self.last_sigma: Optional[Tensor] = None

    @property
    def loss_name(self) -> str:
        """Key of the total loss in the head's loss dict."""
        return self._loss_name

    def current_beta(self) -> float:
        """Bootstrapping beta from the runner's iteration (poly, 1 -> 0)."""
        hub = MessageHub.get_current_instance()
        cur = hub.get_info('iter', 0)
        total = self.max_iters or hub.get_info('max_iters')
        if not total:
            raise RuntimeError(
                "NoiseAwareLoss(mode='bootstrap') needs max_iters: set it in "
                'the loss config or train with an mmengine Runner')
        return poly_beta(cur, int(total), self.beta_power)

    def forward(self,
                logits: Tensor,
                ycrf: Tensor,
                yret: Tensor,
                cos: Optional[Tensor] = None,
                tau: Optional[float] = None) -> Dict[str, Tensor]:
        """Loss dict for (B, C, H, W) logits and (B, H, W) label maps.

        ``cos`` is the (B, C, H, W) cosine map at label resolution (needed
        by ``'nal'`` unless the logits are tau * cos); ``tau`` overrides the
        configured scale (heads pass their classifier's).
        """
        beta = self.current_beta() if self.mode == 'bootstrap' else None
        out = region_loss(
            logits,
            ycrf,
            yret,
            self.mode,
            lam=self.lam,
            cos=cos,
            tau=self.tau if tau is None else tau,
            gamma=self.gamma,
            detach_sigma=self.detach_sigma,
            beta=beta,
            ignore_index=self.ignore_index)
        result = {self.loss_name: self.loss_weight * out['loss']}
        for key, value in out.items():
            if key == 'sigma':
                self.last_sigma = value
            elif key != 'loss':
                part = key[len('loss_'):] if key.startswith('loss_') else key
                result[f'{self.mode}_{part}'] = value.detach()
        if beta is not None:
            result['bootstrap_beta'] = logits.new_tensor(beta)
        return result

    def extra_repr(self) -> str:
        return (f'mode={self.mode!r}, lam={self.lam}, gamma={self.gamma}, '
                f'detach_sigma={self.detach_sigma}, '
                f'loss_name={self.loss_name!r}')
