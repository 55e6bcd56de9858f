"""BANAColorJitter: the authors' brightness/contrast/saturation jitter
(paper §4.1, SPEC §1), checked against a hand computation and PIL."""
import importlib

import numpy as np
import pytest
from mmengine.registry import init_default_scope

from bana_mm.datasets.transforms import BANAColorJitter

# two RGB pixels (100, 50, 200) and (10, 240, 30), stored BGR as mmcv loads
RGB = np.array([[[100, 50, 200], [10, 240, 30]]], dtype=np.uint8)
BGR = RGB[..., ::-1].copy()


def test_hand_computation_bgr():
    # brightness 1.2: (120, 60, 240), (12, 288 -> 255, 36)
    # contrast 0.5: grey = round(.299R + .587G + .114B) = 98, 157;
    #   mean 127.5 -> 128; 128 + 0.5 (x - 128) truncated:
    #   (124, 94, 184), (70, 191, 82)
    # saturation 1.5: grey 113, 142; g + 1.5 (x - g) truncated:
    #   (129, 84, 219), (34, 215, 52)
    out = BANAColorJitter().jitter(BGR, (1.2, 0.5, 1.5))
    expected_rgb = np.array([[[129, 84, 219], [34, 215, 52]]], np.uint8)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected_rgb[..., ::-1])
    # the same image given in RGB order gives the same colours
    rgb_out = BANAColorJitter(channel_order='rgb').jitter(RGB, (1.2, 0.5, 1.5))
    np.testing.assert_array_equal(rgb_out, expected_rgb)


def test_each_op_by_hand():
    jit = BANAColorJitter(channel_order='rgb')
    # brightness 0.5 alone: x * 0.5 truncated
    np.testing.assert_array_equal(
        jit.jitter(RGB, (0.5, None, None)), [[[50, 25, 100], [5, 120, 15]]])
    # contrast 1.5 alone: grey 82, 147 -> mean 114.5 -> 115;
    # 115 + 1.5 (x - 115) clipped: 92.5, 17.5, 242.5 / -42.5, 302.5, -12.5
    np.testing.assert_array_equal(
        jit.jitter(RGB, (None, 1.5, None)), [[[92, 17, 242], [0, 255, 0]]])
    # saturation 0 gives the grey image in every channel:
    # round(29.9 + 29.35 + 22.8) = 82, round(2.99 + 140.88 + 3.42) = 147
    np.testing.assert_array_equal(
        jit.jitter(RGB, (None, None, 0.0)), [[[82, 82, 82], [147, 147, 147]]])


def test_order_matters():
    jit = BANAColorJitter(channel_order='rgb')
    bcs = jit.jitter(RGB, (1.2, 0.5, 1.5))
    # saturation, then contrast, then brightness (same factors)
    scb = RGB
    for i, f in ((2, 1.5), (1, 0.5), (0, 1.2)):
        factors = [None, None, None]
        factors[i] = f
        scb = jit.jitter(scb, factors)
    assert not np.array_equal(bcs, scb)


def test_matches_pil_image_enhance():
    """torchvision's adjust_* on a PIL image (the authors' call) is PIL's
    ImageEnhance: the transform reproduces it exactly."""
    from PIL import Image, ImageEnhance
    rng = np.random.default_rng(0)
    for _ in range(5):
        rgb = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
        factors = rng.uniform(0.5, 1.5, 3)
        pil = Image.fromarray(rgb)
        for enhancer, f in zip((ImageEnhance.Brightness, ImageEnhance.Contrast,
                                ImageEnhance.Color), factors):
            pil = enhancer(pil).enhance(float(f))
        ours = BANAColorJitter().jitter(rgb[..., ::-1].copy(),
                                        [float(f) for f in factors])
        np.testing.assert_array_equal(ours[..., ::-1], np.asarray(pil))


def test_random_factors_always_applied_in_range():
    np.random.seed(0)
    jit = BANAColorJitter(0.5, 0.5, 0.5)
    draws = np.array([jit._random_factors() for _ in range(500)])
    assert draws.shape == (500, 3)
    assert draws.min() >= 0.5 and draws.max() <= 1.5
    assert draws.min() < 0.55 and draws.max() > 1.45
    # strength 0 disables one op, as in the authors' code
    no_contrast = BANAColorJitter(0.5, 0.0, 0.5)
    assert no_contrast._random_factors()[1] is None
    img = np.random.randint(0, 256, (8, 8, 3), dtype=np.uint8)
    out = jit(dict(img=img.copy()))['img']
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img)


def test_invalid_args():
    with pytest.raises(ValueError, match='contrast'):
        BANAColorJitter(contrast=-0.1)
    with pytest.raises(ValueError, match='channel_order'):
        BANAColorJitter(channel_order='hsv')
    with pytest.raises(ValueError, match='a.png'):
        BANAColorJitter()(
            dict(img=np.zeros((4, 4), np.uint8), img_path='a.png'))


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_builds_in_both_scopes(scope):
    import bana_mm  # noqa: F401
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').TRANSFORMS
    t = registry.build(
        dict(
            type='BANAColorJitter',
            brightness=0.5,
            contrast=0.5,
            saturation=0.5))
    assert isinstance(t, BANAColorJitter)
    assert t.strengths == (0.5, 0.5, 0.5)
