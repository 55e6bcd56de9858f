"""Tests of the registry-free stage-3 loss maths (paper §3.3 eqs. 10-14,
supplement §4-5, SPEC §3).

Expected values are written out by hand (with ``math``) or computed by a
plain reference that follows the paper's formulas, never with the functions
under test.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from bana_mm.core.nal import (REGION_LOSS_MODES, confidence_from_cos,
                              confidence_map, cosine_logits, cosine_map,
                              dot_logits, noise_aware_loss, poly_beta,
                              region_loss, split_regions, upsample_to)

IGN = 255


def labels_t(rows):
    """(1, H, W) long label map."""
    return torch.tensor(rows, dtype=torch.long)[None]


def cos_t(pixels):
    """(1, C, H, W) map from nested [row][col][class] lists."""
    return torch.tensor(pixels, dtype=torch.float32).permute(2, 0, 1)[None]


# ------------------------------------------------------------ the example
# 2 classes, 2-d features, 2x2 pixels. W_0 = (1, 0), W_1 = (0, 2) (norm 2, to
# check the normalisation). Features and their cosines (cos_0, cos_1):
#   (0,0): (1, 0)  -> (1.0, 0.0)    (0,1): (3, 4)  -> (0.6, 0.8)
#   (1,0): (4, 3)  -> (0.8, 0.6)    (1,1): (0, -2) -> (0.0, -1.0)
# Ycrf = [[0, 1], [1, 0]], Yret = [[0, 1], [0, 1]]:
#   S = {(0,0), (0,1)}, ~S = {(1,0), (1,1)}.
WEIGHT = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
PHI = torch.tensor([
    [[1.0, 3.0], [4.0, 0.0]],  # feature dim 0
    [[0.0, 4.0], [3.0, -2.0]]
])[None]  # feature dim 1
COS = cos_t([[[1.0, 0.0], [0.6, 0.8]], [[0.8, 0.6], [0.0, -1.0]]])
YCRF = labels_t([[0, 1], [1, 0]])
YRET = labels_t([[0, 1], [0, 1]])


def ce2(margin, tau):
    """-log softmax for 2 classes: log(1 + exp(-tau * (cos_y - cos_other)))."""
    return math.log1p(math.exp(-tau * margin))


def test_cosine_and_dot_logits_by_hand():
    cos = cosine_map(PHI, WEIGHT)
    assert torch.allclose(cos, COS, atol=1e-6)
    assert torch.allclose(cosine_logits(PHI, WEIGHT), 20 * COS, atol=1e-5)
    assert torch.allclose(
        cosine_logits(PHI, WEIGHT, tau=3.0), 3 * COS, atol=1e-6)
    # a 1x1 conv weight is accepted
    assert torch.allclose(
        cosine_logits(PHI, WEIGHT[:, :, None, None]), 20 * COS, atol=1e-5)
    # DP: phi . W_c, e.g. (3, 4) . (0, 2) = 8, (0, -2) . (0, 2) = -4
    dot = dot_logits(PHI, WEIGHT)
    expected = cos_t([[[1, 0], [3, 8]], [[4, 6], [0, -4]]])
    assert torch.equal(dot, expected)
    # a zero feature gives cosine 0, not NaN
    zero = cosine_map(torch.zeros(1, 2, 1, 1), WEIGHT)
    assert torch.equal(zero, torch.zeros(1, 2, 1, 1))


def test_split_regions_by_hand():
    ycrf = labels_t([[0, 1, 2, IGN, IGN, 3]])
    yret = labels_t([[0, 2, IGN, 1, IGN, 3]])
    s, ns = split_regions(ycrf, yret)
    assert s.tolist() == [[[True, False, False, False, False, True]]]
    # Yret ignored but Ycrf labelled -> ~S; Ycrf ignored -> neither
    assert ns.tolist() == [[[False, True, True, False, False, False]]]
    s, ns = split_regions(YCRF, YRET)
    assert s.tolist() == [[[True, True], [False, False]]]
    assert ns.tolist() == [[[False, False], [True, True]]]
    with pytest.raises(ValueError):
        split_regions(YCRF, YRET[:, :1])


def test_nal_value_by_hand():
    tau, gamma, lam = 2.0, 2.0, 0.5
    # S: (0,0) label 0, margin 1 - 0 = 1; (0,1) label 1, margin 0.8 - 0.6
    ce_s = [ce2(1.0, tau), ce2(0.2, tau)]
    # ~S: (1,0) label 1, margin 0.6 - 0.8; D = (1.8, 1.6), sigma = (1.6/1.8)^2
    #     (1,1) label 0, margin 0 - (-1);  D = (1.0, 0.0), sigma = 1
    ce_ns = [ce2(-0.2, tau), ce2(1.0, tau)]
    sig = [(1.6 / 1.8)**2, 1.0]
    assert sig[0] == pytest.approx(64 / 81)
    l_ce = sum(ce_s) / 2
    l_wce = (sig[0] * ce_ns[0] + sig[1] * ce_ns[1]) / (sig[0] + sig[1])
    # the same numbers written out
    assert l_ce == pytest.approx((0.126928 + 0.513015) / 2, abs=1e-6)
    assert l_wce == pytest.approx(
        (64 / 81 * 0.913015 + 0.126928) / (64 / 81 + 1), abs=1e-6)

    out = noise_aware_loss(COS, YCRF, YRET, tau=tau, gamma=gamma, lam=lam)
    assert out['loss_ce'].item() == pytest.approx(l_ce, rel=1e-5)
    assert out['loss_wce'].item() == pytest.approx(l_wce, rel=1e-5)
    assert out['loss'].item() == pytest.approx(l_ce + lam * l_wce, rel=1e-5)
    # sigma is reported on ~S only, detached
    assert not out['sigma'].requires_grad
    assert torch.allclose(out['sigma'],
                          torch.tensor([[[0.0, 0.0], [64 / 81, 1.0]]]))
    # same via the dispatcher, with cos inferred from the cosine logits
    via = region_loss(
        tau * COS, YCRF, YRET, mode='nal', tau=tau, gamma=gamma, lam=lam)
    assert via['loss'].item() == pytest.approx(out['loss'].item(), rel=1e-6)


def test_confidence_map_at_feature_resolution():
    # gamma 2: (0,0) D=(2,1) label 0 -> 1; (0,1) D=(1.6,1.8) label 1 -> 1;
    # (1,0) -> (1.6/1.8)^2; (1,1) D=(1,0) label 0 -> 1
    phi = PHI.clone().requires_grad_(True)
    sigma = confidence_map(phi, WEIGHT, YCRF, gamma=2.0)
    expected = torch.tensor([[[1.0, 1.0], [64 / 81, 1.0]]])
    assert torch.allclose(sigma, expected, atol=1e-6)
    assert sigma.requires_grad
    assert not confidence_map(phi, WEIGHT, YCRF, detach=True).requires_grad
    # ignored pixels get 0
    ycrf = labels_t([[0, IGN], [1, 0]])
    sigma = confidence_map(PHI, WEIGHT, ycrf, gamma=2.0)
    assert sigma[0, 0, 1] == 0
    with pytest.raises(ValueError):  # labels must be at phi resolution
        confidence_map(PHI, WEIGHT, labels_t([[0, 1, 1, 0]]))


def test_sigma_ties_give_one():
    # classes 0 and 1 tie at D = 1.3; class 2 has D = 0.5
    cos = cos_t([[[0.3, 0.3, -0.5]] * 3])
    ycrf = labels_t([[0, 1, 2]])
    for gamma in (1.0, 7.0, 1000.0):
        sigma = confidence_from_cos(cos, ycrf, gamma=gamma)
        assert sigma[0, 0, 0].item() == 1.0
        assert sigma[0, 0, 1].item() == 1.0
        assert sigma[0, 0, 2].item() == pytest.approx(
            (0.5 / 1.3)**gamma, rel=1e-5, abs=1e-30)


def test_sigma_large_gamma_is_binary():
    # per pixel: cosines of 3 classes; label = argmax at (0,0) and (1,1)
    cos = cos_t([[[0.5, 0.2, -0.3], [0.9, 0.8, 0.0]],
                 [[-0.2, 0.1, 0.4], [0.0, 0.7, 0.7]]])
    ycrf = labels_t([[0, 1], [1, 2]])
    sigma = confidence_from_cos(cos, ycrf, gamma=500.0)
    assert sigma[0, 0, 0].item() == 1.0
    assert sigma[0, 1, 1].item() == 1.0  # tie with class 1
    assert sigma[0, 0, 1].item() < 1e-10  # (1.8/1.9)^500
    assert sigma[0, 1, 0].item() < 1e-10  # (1.1/1.4)^500
    # the default gamma 7 is not binary
    soft = confidence_from_cos(cos, ycrf, gamma=7.0)
    assert soft[0, 0, 1].item() == pytest.approx((1.8 / 1.9)**7, rel=1e-5)


def test_lambda_zero_equals_ignore_and_plain_ce():
    torch.manual_seed(0)
    cos = torch.rand(2, 4, 5, 6) * 2 - 1
    ycrf = torch.randint(0, 4, (2, 5, 6))
    yret = torch.randint(0, 4, (2, 5, 6))
    ycrf[0, 0, :3] = IGN
    yret[1, 2, :] = IGN
    a = cos.clone().requires_grad_(True)
    b = cos.clone().requires_grad_(True)
    nal = noise_aware_loss(a, ycrf, yret, lam=0.0)
    ign = region_loss(20 * b, ycrf, yret, mode='ignore')
    assert nal['loss'].item() == pytest.approx(ign['loss'].item(), rel=1e-6)
    nal['loss'].backward()
    ign['loss'].backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7)
    # 'ignore' is CE on Ycrf with ~S set to 255
    target = torch.where(ycrf == yret, ycrf, torch.full_like(ycrf, IGN))
    ref = F.cross_entropy(20 * cos, target, ignore_index=IGN)
    assert ign['loss'].item() == pytest.approx(ref.item(), rel=1e-6)
    assert ign['loss_ce'] is ign['loss']


@pytest.mark.parametrize('mode', ['ce_crf', 'ce_ret'])
def test_plain_ce_on_one_map(mode):
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 4, 4)
    ycrf = torch.randint(0, 3, (2, 4, 4))
    yret = torch.randint(0, 3, (2, 4, 4))
    ycrf[0, 0] = IGN
    yret[1, 1] = IGN
    target = ycrf if mode == 'ce_crf' else yret
    out = region_loss(logits, ycrf, yret, mode=mode)
    ref = F.cross_entropy(logits, target, ignore_index=IGN)
    assert out['loss'].item() == pytest.approx(ref.item(), rel=1e-6)


# 1 x 2 pixels, 2 classes. Pixel 0 is in S (logits (0, 0), label 0:
# CE = ln 2); pixel 1 is in ~S (logits (ln 3, 0) -> H = (3/4, 1/4), Ycrf 1).
BASE_LOGITS = torch.tensor([[[0.0, math.log(3.0)]], [[0.0, 0.0]]])[None]
BASE_YCRF = labels_t([[0, 1]])
BASE_YRET = labels_t([[0, 0]])


def test_entropy_regularisation_by_hand():
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    out = region_loss(BASE_LOGITS, BASE_YCRF, BASE_YRET, mode='entropy')
    assert out['loss_ce'].item() == pytest.approx(math.log(2), rel=1e-6)
    assert out['loss_er'].item() == pytest.approx(entropy, rel=1e-6)
    assert out['loss'].item() == pytest.approx(
        math.log(2) + 0.1 * entropy, rel=1e-6)


def test_bootstrapping_by_hand():
    # beta = 0.5: Y = 0.5 (0, 1) + 0.5 (3/4, 1/4) = (3/8, 5/8)
    bs = -(3 / 8 * math.log(0.75) + 5 / 8 * math.log(0.25))
    out = region_loss(
        BASE_LOGITS, BASE_YCRF, BASE_YRET, mode='bootstrap', beta=0.5)
    assert out['loss_bs'].item() == pytest.approx(bs, rel=1e-6)
    assert out['loss'].item() == pytest.approx(
        math.log(2) + 0.1 * bs, rel=1e-6)
    # beta = 1: CE on ~S with Ycrf (-ln 1/4); beta = 0: the entropy
    one = region_loss(
        BASE_LOGITS, BASE_YCRF, BASE_YRET, mode='bootstrap', beta=1.0)
    assert one['loss_bs'].item() == pytest.approx(math.log(4), rel=1e-6)
    zero = region_loss(
        BASE_LOGITS, BASE_YCRF, BASE_YRET, mode='bootstrap', beta=0.0)
    er = region_loss(BASE_LOGITS, BASE_YCRF, BASE_YRET, mode='entropy')
    assert zero['loss_bs'].item() == pytest.approx(
        er['loss_er'].item(), rel=1e-6)
    with pytest.raises(ValueError):
        region_loss(BASE_LOGITS, BASE_YCRF, BASE_YRET, mode='bootstrap')


def test_bootstrap_target_detached_by_default():
    # with a detached target, d L_BS / d logits = softmax - Y (as plain CE)
    logits = BASE_LOGITS.clone().requires_grad_(True)
    out = region_loss(
        logits, BASE_YCRF, BASE_YRET, mode='bootstrap', beta=0.5, lam=1.0)
    out['loss_bs'].backward()
    grad = logits.grad[0, :, 0, 1]
    expected = torch.tensor([0.75 - 3 / 8, 0.25 - 5 / 8])
    assert torch.allclose(grad, expected, atol=1e-6)
    logits.grad = None
    out = region_loss(
        logits,
        BASE_YCRF,
        BASE_YRET,
        mode='bootstrap',
        beta=0.5,
        detach_target=False)
    out['loss_bs'].backward()
    assert not torch.allclose(logits.grad[0, :, 0, 1], expected, atol=1e-3)


def test_poly_beta_endpoints():
    assert poly_beta(0, 100) == 1.0
    assert poly_beta(100, 100) == 0.0
    assert poly_beta(150, 100) == 0.0
    assert poly_beta(-5, 100) == 1.0
    assert poly_beta(50, 100) == pytest.approx(0.5**0.9)
    assert poly_beta(25, 100, power=1.0) == pytest.approx(0.75)
    values = [poly_beta(i, 10) for i in range(11)]
    assert values == sorted(values, reverse=True)
    with pytest.raises(ValueError):
        poly_beta(0, 0)


def _empty_cases():
    ycrf = torch.tensor([[[0, 1, 2], [2, 1, 0]]])
    only_s = (ycrf, ycrf.clone())
    only_ns = (ycrf, (ycrf + 1) % 3)
    all_ign = (torch.full_like(ycrf, IGN), torch.full_like(ycrf, IGN))
    ret_ign = (ycrf, torch.full_like(ycrf, IGN))  # everything in ~S
    return dict(
        only_s=only_s, only_ns=only_ns, all_ign=all_ign, ret_ign=ret_ign)


@pytest.mark.parametrize('case', ['only_s', 'only_ns', 'all_ign', 'ret_ign'])
@pytest.mark.parametrize('mode', REGION_LOSS_MODES)
def test_empty_regions_contribute_exact_zero(case, mode):
    ycrf, yret = _empty_cases()[case]
    torch.manual_seed(2)
    cos = (torch.rand(1, 3, 2, 3) * 2 - 1).requires_grad_(True)
    kw = dict(beta=0.3) if mode == 'bootstrap' else {}
    out = region_loss(20 * cos, ycrf, yret, mode=mode, **kw)
    out['loss'].backward()
    assert torch.isfinite(out['loss'])
    assert torch.isfinite(cos.grad).all()
    s, ns = split_regions(ycrf, yret)
    if mode.startswith('ce_'):
        target = ycrf if mode == 'ce_crf' else yret
        if (target == IGN).all():
            assert out['loss'].item() == 0.0
            assert torch.equal(cos.grad, torch.zeros_like(cos))
        return
    if not s.any():
        assert out['loss_ce'].item() == 0.0
    for key in ('loss_wce', 'loss_er', 'loss_bs'):
        if key in out and not ns.any():
            assert out[key].item() == 0.0
            assert out['loss'].item() == out['loss_ce'].item()
    if case == 'all_ign':
        assert out['loss'].item() == 0.0
        assert torch.equal(cos.grad, torch.zeros_like(cos))


def test_zero_sigma_sum_is_zero_not_nan():
    # ~S non-empty but sigma = 0 everywhere: the label class has cos = -1
    cos = cos_t([[[-1.0, 0.5], [-1.0, 0.2]]]).requires_grad_(True)
    ycrf = labels_t([[0, 0]])
    yret = labels_t([[1, 1]])
    out = noise_aware_loss(cos, ycrf, yret)
    out['loss'].backward()
    assert out['loss_wce'].item() == 0.0
    assert out['loss'].item() == 0.0
    assert torch.isfinite(cos.grad).all()


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match='upsample'):
        noise_aware_loss(COS, labels_t([[0, 1, 1, 0]] * 4),
                         labels_t([[0, 1, 1, 0]] * 4))
    with pytest.raises(ValueError):
        region_loss(COS, YCRF, YRET, mode='nope')


def test_upsample_to_label_size():
    cos = cosine_map(torch.randn(2, 8, 3, 4), torch.randn(5, 8))
    up = upsample_to(cos, (12, 16))
    assert up.shape == (2, 5, 12, 16)
    assert up.abs().max() <= 1.0 + 1e-6  # convex combination of cosines
    assert upsample_to(cos, (3, 4)) is cos
    # corners of align_corners=True reproduce the corner values
    corner = upsample_to(cos, (12, 16), align_corners=True)
    assert torch.allclose(corner[..., 0, 0], cos[..., 0, 0])


def _reference_nal(phi, weight, ycrf, yret, tau, gamma, lam, detach):
    """Eqs. (10)-(14) with explicit cosines, at feature resolution."""
    f = phi / phi.norm(dim=1, keepdim=True)
    w = weight / weight.norm(dim=1, keepdim=True)
    cos = torch.einsum('bdhw,cd->bchw', f, w)
    log_h = torch.log_softmax(tau * cos, dim=1)
    lab = ycrf.clamp(max=cos.shape[1] - 1)
    ce = -log_h.gather(1, lab[:, None])[:, 0]
    d = 1 + cos
    sigma = (d.gather(1, lab[:, None])[:, 0] / d.max(dim=1).values)**gamma
    if detach:
        sigma = sigma.detach()
    s = (ycrf == yret) & (ycrf != IGN)
    ns = (ycrf != yret) & (ycrf != IGN)
    l_ce = ce[s].sum() / s.sum()
    l_wce = (sigma[ns] * ce[ns]).sum() / sigma[ns].sum()
    return l_ce + lam * l_wce


@pytest.mark.parametrize('detach', [False, True])
def test_gradients_against_reference(detach):
    torch.manual_seed(3)
    phi0, w0 = torch.randn(2, 6, 4, 5), torch.randn(3, 6)
    ycrf = torch.randint(0, 3, (2, 4, 5))
    yret = torch.randint(0, 3, (2, 4, 5))
    ycrf[0, 0, 0] = IGN
    grads = []
    for use_ref in (False, True):
        phi = phi0.clone().requires_grad_(True)
        w = w0.clone().requires_grad_(True)
        if use_ref:
            loss = _reference_nal(phi, w, ycrf, yret, 20.0, 7.0, 0.1, detach)
        else:
            loss = noise_aware_loss(
                cosine_map(phi, w), ycrf, yret, detach_sigma=detach)['loss']
        loss.backward()
        grads.append((loss.detach(), phi.grad, w.grad))
    (l1, gp1, gw1), (l2, gp2, gw2) = grads
    assert l1.item() == pytest.approx(l2.item(), rel=1e-5)
    assert torch.allclose(gp1, gp2, atol=1e-6, rtol=1e-4)
    assert torch.allclose(gw1, gw2, atol=1e-6, rtol=1e-4)


def test_detach_sigma_changes_only_the_sigma_path():
    torch.manual_seed(4)
    phi0, w0 = torch.randn(1, 4, 3, 3), torch.randn(3, 4)
    ycrf = torch.randint(0, 3, (1, 3, 3))
    yret = (ycrf + torch.randint(0, 2, (1, 3, 3))) % 3  # S and ~S non-empty
    assert ((ycrf == yret).any() and (ycrf != yret).any())

    def grads(detach, lam):
        phi = phi0.clone().requires_grad_(True)
        w = w0.clone().requires_grad_(True)
        out = noise_aware_loss(
            cosine_map(phi, w), ycrf, yret, lam=lam, detach_sigma=detach)
        out['loss'].backward()
        return out['loss'].item(), phi.grad, w.grad

    l_on, p_on, w_on = grads(False, 0.1)
    l_off, p_off, w_off = grads(True, 0.1)
    assert l_on == pytest.approx(l_off)  # same value either way
    assert not torch.allclose(p_on, p_off)  # sigma carries gradient
    assert not torch.allclose(w_on, w_off)
    # at lambda = 0 sigma plays no role
    _, p0_on, w0_on = grads(False, 0.0)
    _, p0_off, w0_off = grads(True, 0.0)
    assert torch.equal(p0_on, p0_off) and torch.equal(w0_on, w0_off)


def test_gradients_reach_only_labelled_pixels():
    torch.manual_seed(5)
    phi = torch.randn(1, 4, 2, 3, requires_grad=True)
    w = torch.randn(3, 4, requires_grad=True)
    ycrf = labels_t([[0, 1, IGN], [2, 2, 1]])
    yret = labels_t([[0, 2, 1], [IGN, 2, 0]])
    # S = {(0,0), (1,1)}; ~S = {(0,1), (1,0), (1,2)}; (0,2) ignored
    out = noise_aware_loss(cosine_map(phi, w), ycrf, yret)
    out['loss'].backward()
    norms = phi.grad.norm(dim=1)[0]
    assert norms[0, 2] == 0
    assert (norms.flatten()[[0, 1, 3, 4, 5]] > 0).all()
    assert w.grad.norm() > 0
    # 'ignore': ~S gets no gradient
    phi.grad = None
    region_loss(
        cosine_logits(phi, w), ycrf, yret, mode='ignore')['loss'].backward()
    norms = phi.grad.norm(dim=1)[0]
    assert norms[0, 1] == 0 and norms[1, 0] == 0 and norms[1, 2] == 0
    assert norms[0, 0] > 0 and norms[1, 1] > 0


def test_upsampled_cosines_and_dot_product_variant():
    torch.manual_seed(6)
    phi = torch.randn(2, 5, 3, 3, requires_grad=True)
    w = torch.randn(4, 5, requires_grad=True)
    ycrf = torch.randint(0, 4, (2, 6, 6))
    yret = torch.randint(0, 4, (2, 6, 6))
    cos = upsample_to(cosine_map(phi, w), (6, 6))
    out = noise_aware_loss(cos, ycrf, yret)
    out['loss'].backward()
    assert phi.grad.abs().sum() > 0 and w.grad.abs().sum() > 0
    # sigma at label resolution equals eq. (12) on the upsampled cosines
    d = 1 + cos.detach()
    ref = (d.gather(1, ycrf[:, None])[:, 0] / d.amax(1))**7
    ns = ycrf != yret
    assert torch.allclose(out['sigma'][ns], ref[ns], atol=1e-6)
    assert (out['sigma'][~ns] == 0).all()
    # DP ablation: H from dot-product logits, sigma still from cosines
    dot = upsample_to(dot_logits(phi, w), (6, 6))
    dp = noise_aware_loss(cos, ycrf, yret, logits=dot)
    assert torch.equal(dp['sigma'], out['sigma'])
    s = ycrf == yret
    ref_ce = F.cross_entropy(dot, torch.where(s, ycrf, IGN), ignore_index=IGN)
    assert dp['loss_ce'].item() == pytest.approx(ref_ce.item(), rel=1e-5)
