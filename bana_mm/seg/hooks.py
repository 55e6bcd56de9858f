"""Confidence-map hook: sigma of eq. (12) for fixed training images
(paper Figure 5), so users can watch NAL down-weight wrong pseudo labels."""
from __future__ import annotations

import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import Compose
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from ..core.nal import confidence_from_cos, split_regions
from ..visualization import colorize, heatmap
from .heads import NALOutput


@HOOKS.register_module()
class ConfidenceMapHook(Hook):
    """Every ``interval`` training iterations, draw sigma for a few fixed
    training images into the runner's visualizer (rank 0 only).

    Each picture is ``image | Ycrf | Yret | sigma | sigma on ~S`` (sigma of
    eq. 12 at image size, bright = confident; the last panel shows it only
    where Ycrf and Yret disagree, grey elsewhere), added as
    ``visualizer.add_image('confidence_<id>', panel, step=<iter>)``: the
    local backend writes ``<log_dir>/vis_data/vis_image/
    confidence_<id>_<iter>.png``, TensorBoard / W&B backends log it too.

    Args:
        interval: iterations between two dumps.
        num_images: how many training images (the first ones of the
            training set, or ``image_ids``).
        image_ids: explicit ids (file stems) of training images.
        gamma: gamma of eq. (12); None takes it from the head's loss.
    """

    priority = 'LOW'

    def __init__(self,
                 interval: int = 500,
                 num_images: int = 4,
                 image_ids: Optional[Sequence[str]] = None,
                 gamma: Optional[float] = None) -> None:
        if interval < 1 or num_images < 1:
            raise ValueError('interval and num_images must be >= 1')
        self.interval = interval
        self.num_images = num_images
        self.image_ids = list(image_ids) if image_ids else None
        self.gamma = gamma
        self._pipeline = Compose([
            dict(type='LoadImageFromFile'),
            dict(type='LoadPseudoLabels'),
            dict(type='PackTwoMapSegInputs'),
        ])

    def _infos(self, dataset) -> List[dict]:
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        if self.image_ids is None:
            return infos[:self.num_images]
        by_id = {
            osp.splitext(osp.basename(i['img_path']))[0]: i
            for i in infos
        }
        missing = [i for i in self.image_ids if i not in by_id]
        if missing:
            raise KeyError(f'ConfidenceMapHook: ids {missing} are not in '
                           'the training set')
        return [by_id[i] for i in self.image_ids]

    def _gamma(self, head) -> float:
        if self.gamma is not None:
            return float(self.gamma)
        losses = head.loss_decode if isinstance(
            head.loss_decode, torch.nn.ModuleList) else [head.loss_decode]
        for loss in losses:
            if hasattr(loss, 'gamma'):
                return float(loss.gamma)
        return 7.0

    @torch.no_grad()
    def render(self, runner) -> Dict[str, np.ndarray]:
        """The (H, 5W, 3) uint8 RGB panels, keyed by image id."""
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        head = model.decode_head
        if not hasattr(head, 'cosine_scores'):
            raise TypeError('ConfidenceMapHook needs a NoiseAwareHeadMixin '
                            f'head, got {type(head).__name__}')
        gamma = self._gamma(head)
        was_training = model.training
        model.eval()
        panels = {}
        try:
            dataset = runner.train_dataloader.dataset
            for info in self._infos(dataset):
                packed = self._pipeline(dict(info))
                data = model.data_preprocessor(
                    dict(
                        inputs=[packed['inputs']],
                        data_samples=[packed['data_samples']]), False)
                out = head.forward(model.extract_feat(data['inputs']))
                if not isinstance(out, NALOutput):
                    raise TypeError(f'{type(head).__name__}.forward must '
                                    'return NALOutput (logits, phi)')
                ycrf = packed['data_samples'].gt_sem_seg.data
                yret = packed['data_samples'].gt_ret_seg.data
                cos = head.cosine_scores(out, ycrf.shape[-2:])
                sigma = confidence_from_cos(cos.float(), ycrf.to(cos.device),
                                            gamma)[0].cpu().numpy()
                _, unreliable = split_regions(ycrf, yret)
                unreliable = unreliable[0].numpy()
                image = packed['inputs'].numpy().transpose(1, 2, 0)[..., ::-1]
                on_bad = heatmap(sigma)
                on_bad[~unreliable] = 128
                name = osp.splitext(osp.basename(info['img_path']))[0]
                panels[name] = np.concatenate([
                    np.ascontiguousarray(image, dtype=np.uint8),
                    colorize(ycrf[0].numpy()),
                    colorize(yret[0].numpy()),
                    heatmap(sigma), on_bad
                ],
                                              axis=1)
        finally:
            model.train(was_training)
        return panels

    def save_maps(self, runner, step: int) -> List[str]:
        """Render and add the panels to the visualizer (main process only);
        return the image names given to it."""
        if not is_main_process():
            return []
        names = []
        for image_id, panel in self.render(runner).items():
            name = f'confidence_{image_id}'
            runner.visualizer.add_image(name, panel, step=step)
            names.append(name)
        return names

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            self.save_maps(runner, runner.iter + 1)
