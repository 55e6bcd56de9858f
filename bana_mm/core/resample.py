"""Resampling of feature-resolution maps to the image (SPEC §2, paper
footnote 3), registry-free.

``feat`` is the (D, h, w) feature map of a network input of size
``input_hw``; the image occupies the top-left ``image_hw`` of that input at
the same scale (test-time padding only), so maps are upsampled bilinearly to
``input_hw`` and cropped to the image.

Two places for the per-pixel maps (``upsample``):

* ``'maps'`` (paper footnote 3): ``ReLU(cos(f, q))`` and ``ReLU(f . w)`` are
  computed at feature resolution and then upsampled;
* ``'features'`` (the authors' order): as if the features were upsampled to
  the image first. Computed exactly without holding the (D, H, W) tensor:
  dot products commute with bilinear interpolation, masked means use its
  adjoint (:meth:`BilinearResampler.region_means`), and only the per-pixel
  feature norms come from the inner products of neighbouring feature cells.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

UPSAMPLE_MODES = ('maps', 'features')
_EPS = 1e-12  # F.normalize's norm floor


class BilinearResampler:
    """Bilinear map from a feature grid covering the (padded) network input
    to the image, its adjoint, and exact statistics of upsampled features.

    ``up(x)`` = bilinear upsampling of (K, h, w) maps to ``input_hw``,
    cropped to ``image_hw``. It is linear, ``up(x) = Ry x Rx^T`` with
    interpolation matrices Ry (H, h), Rx (W, w); :meth:`adjoint` applies
    ``Ry^T m Rx``, so ``sum_p m(p) up(f)(p) = f @ adjoint(m)``.
    """

    def __init__(self,
                 feat_hw: Tuple[int, int],
                 input_hw: Tuple[int, int],
                 image_hw: Tuple[int, int],
                 align_corners: bool = False):
        self.feat_hw = tuple(int(v) for v in feat_hw)
        self.input_hw = tuple(int(v) for v in input_hw)
        self.image_hw = tuple(int(v) for v in image_hw)
        self.align_corners = align_corners
        if (self.image_hw[0] > self.input_hw[0]
                or self.image_hw[1] > self.input_hw[1]):
            raise ValueError(f'image {self.image_hw} larger than the network '
                             f'input {self.input_hw}')
        self._mats: Optional[Tuple[Tensor, Tensor]] = None

    @property
    def identity(self) -> bool:
        return self.feat_hw == self.input_hw

    def up(self, maps: Tensor) -> Tensor:
        """(K, h, w) -> (K, H, W): bilinear to the input, crop to image."""
        H, W = self.image_hw
        if maps.shape[0] == 0:
            return maps.new_zeros((0, H, W))
        if not self.identity:
            maps = F.interpolate(
                maps[None],
                size=self.input_hw,
                mode='bilinear',
                align_corners=self.align_corners)[0]
        return maps[:, :H, :W]

    def _matrices(self, dtype: torch.dtype, device) -> Tuple[Tensor, Tensor]:
        if self._mats is None:
            (h, w), (Hin, Win), (H, W) = (self.feat_hw, self.input_hw,
                                          self.image_hw)
            ry = F.interpolate(
                torch.eye(h)[None, None],
                size=(Hin, h),
                mode='bilinear',
                align_corners=self.align_corners)[0, 0]
            rx = F.interpolate(
                torch.eye(w)[None, None],
                size=(Win, w),
                mode='bilinear',
                align_corners=self.align_corners)[0, 0]
            self._mats = (ry[:H], rx[:W])
        return tuple(m.to(dtype=dtype, device=device) for m in self._mats)

    def adjoint(self, maps: Tensor) -> Tensor:
        """(K, H, W) image maps -> (K, h, w) weights ``Ry^T m Rx``."""
        if self.identity:
            h, w = self.feat_hw
            return F.pad(maps, (0, w - maps.shape[2], 0, h - maps.shape[1]))
        ry, rx = self._matrices(maps.dtype, maps.device)
        return ry.t() @ maps @ rx

    def region_means(self, feat: Tensor,
                     masks: Tensor) -> Tuple[Tensor, Tensor]:
        """Mean of the upsampled features over each (K, H, W) bool mask.

        Returns (K, D) means (0 for an empty mask) and (K,) pixel counts.
        """
        weights = self.adjoint(masks.to(feat.dtype))  # (K, h, w)
        sums = weights.flatten(1) @ feat.flatten(1).t()  # (K, D)
        counts = masks.flatten(1).sum(dim=1)
        return sums / counts.clamp(min=1)[:, None].to(feat.dtype), counts

    def _taps(self, weights: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """First tap index and the two tap weights of each row of a
        (n, m) interpolation matrix (bilinear: at most two taps a row)."""
        first = (weights != 0).to(torch.int8).argmax(dim=1)
        second = (first + 1).clamp(max=weights.shape[1] - 1)
        rows = torch.arange(weights.shape[0])
        w1 = torch.where(second > first, weights[rows, second],
                         torch.zeros_like(weights[:, 0]))
        return first, weights[rows, first], w1

    def feature_norms(self, feat: Tensor) -> Tensor:
        """(H, W) L2 norm of the upsampled features, exactly, without them.

        Each upsampled feature is ``sum_k w_k f(c_k)`` over the four corner
        cells c_k of its pixel, so its squared norm is ``sum_kl w_k w_l
        <f(c_k), f(c_l)>``: the inner products of neighbouring cells (five
        (h, w) maps) gathered per pixel. The (D, H, W) tensor (49 GB at
        4000 x 3000 with D = 1024) is never formed.
        """
        H, W = self.image_hw
        if self.identity:
            return feat[:, :H, :W].square().sum(dim=0).sqrt()
        ry, rx = self._matrices(feat.dtype, feat.device)
        i0, a0, a1 = self._taps(ry)  # rows: (H,)
        j0, b0, b1 = self._taps(rx)  # columns: (W,)
        f = F.pad(feat, (0, 1, 0, 1), mode='replicate')  # (D, h+1, w+1)
        self_dot = f.square().sum(dim=0)
        right = (f[:, :, :-1] * f[:, :, 1:]).sum(dim=0)  # <(i,j),(i,j+1)>
        down = (f[:, :-1] * f[:, 1:]).sum(dim=0)  # <(i,j),(i+1,j)>
        diag = (f[:, :-1, :-1] * f[:, 1:, 1:]).sum(dim=0)
        anti = (f[:, :-1, 1:] * f[:, 1:, :-1]).sum(dim=0)

        def at(grid: Tensor, di: int, dj: int) -> Tensor:
            return grid[(i0 + di)[:, None], (j0 + dj)[None, :]]

        w00 = a0[:, None] * b0[None]
        w01 = a0[:, None] * b1[None]
        w10 = a1[:, None] * b0[None]
        w11 = a1[:, None] * b1[None]
        total = (
            w00.square() * at(self_dot, 0, 0) +
            w01.square() * at(self_dot, 0, 1) +
            w10.square() * at(self_dot, 1, 0) +
            w11.square() * at(self_dot, 1, 1))
        total += 2 * (
            w00 * w01 * at(right, 0, 0) + w10 * w11 * at(right, 1, 0) +
            w00 * w10 * at(down, 0, 0) + w01 * w11 * at(down, 0, 1) +
            w00 * w11 * at(diag, 0, 0) + w01 * w10 * at(anti, 0, 0))
        return total.clamp(min=0).sqrt()


def similarity_maps(feat: Tensor,
                    queries: Tensor,
                    resampler: BilinearResampler,
                    upsample: str = 'maps',
                    norms: Optional[Tensor] = None) -> Tensor:
    """ReLU(cos(f(p), q_k)) at image resolution, (K, H, W) (eqs. 2, 9).

    ``'features'`` evaluates it on the upsampled features (``norms`` from
    :meth:`BilinearResampler.feature_norms`); otherwise at feature
    resolution, then upsampled. A zero query gives a zero map.
    """
    q = F.normalize(queries, dim=1, eps=_EPS)
    if upsample == 'features':
        if norms is None:
            norms = resampler.feature_norms(feat)
        dots = resampler.up(torch.einsum('kd,dhw->khw', q, feat))
        return (dots / norms.clamp(min=_EPS)).relu()
    f = F.normalize(feat, dim=0, eps=_EPS)
    return resampler.up(torch.einsum('kd,dhw->khw', q, f).relu())


def cam_maps(feat: Tensor,
             weights: Tensor,
             resampler: BilinearResampler,
             upsample: str = 'maps') -> Tensor:
    """CAM_c = ReLU(f . w_c) (eq. 6) at image resolution, (K, H, W)."""
    dots = torch.einsum('kd,dhw->khw', weights.to(feat.dtype), feat)
    if upsample == 'features':  # dot products commute with interpolation
        return resampler.up(dots).relu()
    return resampler.up(dots.relu())
