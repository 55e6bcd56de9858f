"""Multi-scale + flip merge as the authors (issue 9 item 7): the mean of the
views' logits, then softmax, not mmseg's mean of probabilities."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.models.segmentors import SegTTAModel
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from PIL import Image

import bana_mm.seg  # noqa: F401


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _tta(crf=None):
    return MODELS.build(
        dict(
            type='CRFSegTTAModel',
            crf=crf,
            module=dict(
                type='CRFEncoderDecoder',
                backbone=dict(
                    type='VGG16LargeFOV', width_mult=0.125, init_cfg=None),
                decode_head=dict(
                    type='DeepLabV1Head',
                    in_channels=128,
                    num_classes=2,
                    loss_decode=dict(type='NoiseAwareLoss')))))


def _views(pixel_logits, img_path='x.png'):
    """One image, one view per (class-0, class-1) logit pair on a 1x1
    map; pixel (0, 1) of every view is a fixed class-0 pixel."""
    views = []
    for l0, l1 in pixel_logits:
        s = SegDataSample(metainfo=dict(img_path=img_path, ori_shape=(1, 2)))
        s.seg_logits = PixelData(data=torch.tensor([[[l0, 5.]], [[l1, 0.]]]))
        s.gt_sem_seg = PixelData(data=torch.tensor([[[1, 0]]]))
        views.append(s)
    return views


def test_mean_of_logits_not_of_probabilities():
    # view 1 is very sure of class 1, views 2-3 fairly sure of class 0:
    # mean logits (2, 3.33) -> class 1; mean softmax (0.64, 0.36) -> class 0
    views = _views([(0., 10.), (3., 0.), (3., 0.)])
    model = _tta()
    merged = model.merge_preds([views])[0]
    assert torch.allclose(merged.seg_logits.data[:, 0, 0],
                          torch.tensor([2., 10. / 3]))
    assert merged.pred_sem_seg.data.tolist() == [[[1, 0]]]
    assert torch.equal(merged.gt_sem_seg.data, views[0].gt_sem_seg.data)
    assert merged.img_path == 'x.png'
    # mmseg's own merge averages probabilities and picks class 0 here
    mmseg_pred = SegTTAModel.merge_preds(
        model, [_views([(0., 10.), (3., 0.), (3., 0.)])])[0].pred_sem_seg.data
    assert mmseg_pred.flatten().tolist() == [0, 0]


def test_crf_runs_once_on_the_mean_logits(tmp_path, monkeypatch):
    from bana_mm.seg import segmentors
    path = str(tmp_path / 'im.png')
    Image.fromarray(np.zeros((1, 2, 3), np.uint8)).save(path)
    calls = []
    real = segmentors.crf_predict

    def spy(logits, img_path, settings):
        calls.append((logits.clone(), img_path))
        return real(logits, img_path, settings)

    monkeypatch.setattr(segmentors, 'crf_predict', spy)
    model = _tta(crf=dict(enabled=True, iterations=2))
    merged = model.merge_preds([_views([(0., 10.), (3., 0.), (3., 0.)],
                                       path)])[0]
    assert len(calls) == 1 and calls[0][1] == path
    assert torch.allclose(calls[0][0][:, 0, 0], torch.tensor([2., 10. / 3]))
    assert merged.pred_sem_seg.data.shape == (1, 1, 2)


def test_views_of_different_sizes_are_an_error():
    views = _views([(0., 1.), (1., 0.)])
    views[1].seg_logits = PixelData(data=torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match='x.png'):
        _tta().merge_preds([views])
