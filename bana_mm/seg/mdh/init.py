"""Pretrained weights for a backbone whose first conv takes extra channels.

The paper widens HRNetV2-W48's first conv to 5 input channels (§4.2) but
does not say how it is initialised; here the ImageNet RGB filters are kept
and the prior channels start at zero, so the network starts as the
pretrained RGB model and learns how much to use the priors.
"""
from __future__ import annotations

from typing import Optional

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit
from mmseg.registry import WEIGHT_INITIALIZERS


def widen_input_channels(weight: torch.Tensor,
                         in_channels: int) -> torch.Tensor:
    """``(O, c, k, k)`` -> ``(O, in_channels, k, k)``, new inputs zero."""
    if weight.shape[1] > in_channels:
        raise ValueError(f'cannot narrow a conv from {weight.shape[1]} to '
                         f'{in_channels} input channels')
    out = weight.new_zeros((weight.shape[0], in_channels, *weight.shape[2:]))
    out[:, :weight.shape[1]] = weight
    return out


@WEIGHT_INITIALIZERS.register_module()
class PretrainedExtraChannels(PretrainedInit):
    """``Pretrained`` init that widens ``first_conv`` (a state-dict key of
    the initialised module) with zero-initialised extra input channels."""

    def __init__(self,
                 checkpoint: str,
                 first_conv: str = 'conv1.weight',
                 prefix: Optional[str] = None,
                 map_location: str = 'cpu') -> None:
        super().__init__(checkpoint, prefix=prefix, map_location=map_location)
        self.first_conv = first_conv

    def __call__(self, module) -> None:
        from mmengine.runner.checkpoint import (_load_checkpoint,
                                                _load_checkpoint_with_prefix,
                                                load_state_dict)
        if self.prefix is None:
            ckpt = _load_checkpoint(self.checkpoint, self.map_location)
            state = ckpt.get('state_dict', ckpt)
        else:
            state = _load_checkpoint_with_prefix(
                self.prefix, self.checkpoint, map_location=self.map_location)
        state = {
            k[7:] if k.startswith('module.') else k: v
            for k, v in state.items()
        }
        target = module.state_dict()[self.first_conv]
        if self.first_conv not in state:
            raise KeyError(f'{self.checkpoint} has no {self.first_conv!r}')
        state[self.first_conv] = widen_input_channels(state[self.first_conv],
                                                      target.shape[1])
        print_log(
            f'load model from: {self.checkpoint} ({self.first_conv} '
            f'widened to {target.shape[1]} input channels, new ones '
            'zero)',
            logger='current')
        load_state_dict(module, state, strict=False, logger='current')
