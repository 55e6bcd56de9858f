"""Stage-3 alignment (SPEC §2, issue 9 item 2): by default a stride-8 map
reaches the image with align_corners=True, i.e. feature cell i lands exactly
on input pixel 8i, in the heads (loss and predict) and in the segmentor."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import bana_mm.seg  # noqa: F401
from bana_mm.seg import NALOutput

H, W = 5, 6  # feature map; image 8 * (H - 1) + 1 = 33 by 41
IMG = (8 * (H - 1) + 1, 8 * (W - 1) + 1)


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _grid_map():
    """(1, 2, H, W): channel 0 holds the column index, channel 1 the row."""
    cols = torch.arange(W, dtype=torch.float32).expand(H, W)
    rows = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    return torch.stack([cols, rows])[None]


def _assert_cell_i_at_pixel_8i(up):
    """``up`` (2, 33, 41) is the upsampled grid map."""
    for j in range(W):
        assert torch.allclose(up[0, :, 8 * j], torch.full((IMG[0], ), j * 1.))
    for i in range(H):
        assert torch.allclose(up[1, 8 * i, :], torch.full((IMG[1], ), i * 1.))
    assert up[0, 0, 4].item() == pytest.approx(0.5)  # linear in between


def _head(**kw):
    return MODELS.build(
        dict(
            type='DeepLabV1Head',
            in_channels=2,
            num_classes=2,
            **kw,
            loss_decode=dict(type='NoiseAwareLoss')))


def test_head_predict_puts_cell_i_at_pixel_8i():
    head = _head()
    assert head.align_corners is True
    out = NALOutput(_grid_map(), torch.zeros(1, 2, H, W))
    up = head.predict_by_feat(out, [dict(img_shape=IMG)])
    assert up.shape == (1, 2) + IMG
    _assert_cell_i_at_pixel_8i(up[0])
    # mmseg's default (False) shifts the map: pixel 8 is not cell 1
    shifted = _head(align_corners=False).predict_by_feat(
        out, [dict(img_shape=IMG)])
    assert abs(shifted[0, 0, 0, 8].item() - 1.0) > 0.2


def test_head_cosine_map_for_the_loss_is_aligned():
    head = _head()
    out = NALOutput(20.0 * _grid_map() / W, torch.zeros(1, 2, H, W))
    cos = head.cosine_scores(out, IMG)
    _assert_cell_i_at_pixel_8i(cos[0] * W)


def test_head_loss_upsamples_with_align_corners_true():
    torch.manual_seed(0)
    logits = torch.randn(1, 2, H, W)
    label = torch.randint(0, 2, (1, ) + IMG)
    s = SegDataSample()
    s.gt_sem_seg = PixelData(data=label)
    s.gt_ret_seg = PixelData(data=label.clone())
    out = NALOutput(logits, torch.zeros(1, 2, H, W))
    got = {}
    for align in (True, False):
        head = MODELS.build(
            dict(
                type='DeepLabV1Head',
                in_channels=2,
                num_classes=2,
                align_corners=align,
                loss_decode=dict(type='NoiseAwareLoss', mode='ce_crf')))
        got[align] = head.loss_by_feat(out, [s])['loss_nal'].item()
    for align in (True, False):
        ref = F.cross_entropy(
            F.interpolate(logits, IMG, mode='bilinear', align_corners=align),
            label)
        assert got[align] == pytest.approx(ref.item(), rel=1e-6)
    assert got[True] != pytest.approx(got[False], rel=1e-3)


@pytest.mark.parametrize(
    'head_cfg',
    [
        dict(
            type='DeepLabV1Head',
            in_channels=128,
            num_classes=2,
            loss_decode=dict(type='NoiseAwareLoss')),
        dict(
            type='FCNHead',
            in_channels=128,
            channels=8,
            num_convs=1,
            num_classes=2),  # a stock mmseg head: False by default in mmseg
    ])
def test_crf_segmentor_defaults_to_align_corners_and_resizes_aligned(head_cfg):
    cfg = dict(
        type='CRFEncoderDecoder',
        backbone=dict(type='VGG16LargeFOV', width_mult=0.125, init_cfg=None),
        decode_head=head_cfg,
        test_cfg=ConfigDict(mode='whole'))
    model = MODELS.build(cfg)
    assert model.align_corners is True and model.decode_head.align_corners
    sample = SegDataSample(
        metainfo=dict(
            ori_shape=IMG, img_shape=(H, W), padding_size=[0, 0, 0, 0]))
    out = model.postprocess_result(_grid_map(), [sample])[0]
    _assert_cell_i_at_pixel_8i(out.seg_logits.data)
    # still a config option
    explicit = MODELS.build(
        dict(cfg, decode_head=dict(head_cfg, align_corners=False)))
    assert explicit.align_corners is False
    assert explicit.decode_head.align_corners is False
