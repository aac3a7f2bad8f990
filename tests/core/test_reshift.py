import math

import pytest
import torch

from surf_video.core import (
    estimate_x0,
    make_stage_plan,
    relative_change,
    renoise,
    resize_latent,
    resize_noise_gain,
    restage_sigmas,
    shift_sigmas,
    snr_resume,
)


def test_estimate_x0_inverts_the_flow_interpolation():
    x0, eps = torch.randn(2, 4, 3, 8, 8), torch.randn(2, 4, 3, 8, 8)
    s = 0.7
    z = (1 - s) * x0 + s * eps
    torch.testing.assert_close(estimate_x0(z, s, eps - x0), x0, rtol=0, atol=1e-6)
    sig = torch.tensor([0.2, 0.9])
    z = (1 - sig.view(2, 1, 1, 1, 1)) * x0 + sig.view(2, 1, 1, 1, 1) * eps
    torch.testing.assert_close(estimate_x0(z, sig, eps - x0), x0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["bilinear", "area", "bicubic"])
def test_resize_is_spatial_only(mode):
    x = torch.randn(2, 4, 5, 16, 24)
    y = resize_latent(x, (8, 12), mode)
    assert y.shape == (2, 4, 5, 8, 12)
    # frames are independent: resizing one frame alone gives the same result
    torch.testing.assert_close(resize_latent(x[:, :, 2:3], (8, 12), mode), y[:, :, 2:3])


def test_resize_rejects_unknown_mode():
    with pytest.raises(ValueError, match="resize_mode"):
        resize_latent(torch.zeros(1, 1, 1, 4, 4), (2, 2), "lanczos")


def test_renoise_sigma_zero_is_resized_x0_and_noise_std_is_sigma():
    torch.manual_seed(0)
    x0 = torch.randn(1, 4, 3, 32, 32)
    small = resize_latent(x0, (16, 16), "area")
    noise = torch.randn_like(small)
    assert torch.equal(renoise(small, 0.0, noise, "flow"), small)
    assert torch.equal(renoise(small, 0.0, noise, "paper"), small)
    big_noise = torch.randn(4, 16, 8, 64, 64)
    zero = torch.zeros_like(big_noise)
    for s in (0.3, 0.9):
        assert abs(renoise(zero, s, big_noise, "flow").std().item() - s) < 0.01 * s
        assert abs(renoise(zero, s, big_noise, "paper").std().item() - s) < 0.01 * s
    # the two forms differ in the signal coefficient: flow scales x0 by (1 - s), the paper's eq. 2 does not
    torch.testing.assert_close(renoise(small, 0.4, zero[: 1, :4, :3, :16, :16], "flow"), 0.6 * small)
    torch.testing.assert_close(renoise(small, 0.4, zero[: 1, :4, :3, :16, :16], "paper"), small)
    with pytest.raises(ValueError, match="renoise"):
        renoise(small, 0.4, noise, "bogus")


def test_area_gain_is_exactly_two():
    assert resize_noise_gain((32, 32), (16, 16), "area") == pytest.approx(2.0, abs=1e-12)
    assert resize_noise_gain((30, 52), (10, 26), "area") == pytest.approx(math.sqrt(3 * 2), abs=1e-12)
    assert resize_noise_gain((16, 16), (16, 16), "bilinear") == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "area"])
@pytest.mark.parametrize("sizes", [((60, 104), (30, 52)), ((60, 104), (45, 78)), ((36, 36), (16, 16))])
def test_gain_matches_measured_noise_std(mode, sizes):
    g = resize_noise_gain(sizes[0], sizes[1], mode)
    torch.manual_seed(1)
    noise = torch.randn(8, 16, 8, *sizes[0], dtype=torch.float64)
    measured = resize_latent(noise, sizes[1], mode).std().item()
    assert measured == pytest.approx(1 / g, rel=0.01)


def test_snr_resume_statistics():
    torch.manual_seed(2)
    s, g = 0.9, 2.0
    eps = torch.randn(4, 16, 8, 64, 64)
    z = s * eps  # x0 = 0
    zs, s_new = snr_resume(resize_latent(z, (32, 32), "area"), s, g)
    assert s_new == pytest.approx((s / g) / ((1 - s) + s / g))
    assert s_new < s
    assert zs.std().item() == pytest.approx(s_new, rel=0.01)
    # s = 0: the result is the resized x0
    x0 = torch.randn(1, 4, 3, 16, 16)
    zs, s_new = snr_resume(resize_latent(x0, (8, 8), "area"), 0.0, g)
    assert s_new == 0.0
    torch.testing.assert_close(zs, resize_latent(x0, (8, 8), "area"))


def test_stage_plans_and_errors():
    plan = make_stage_plan(40, [(60, 104), (30, 52)], [10])
    assert [(s.start, s.end) for s in plan] == [(0, 10), (10, 40)]
    plan = make_stage_plan(40, [(60, 104), (45, 78), (30, 52)], [10, 20])
    assert [s.num_steps for s in plan] == [10, 10, 20]
    with pytest.raises(ValueError, match="switch_step"):
        make_stage_plan(40, [(60, 104), (30, 52)], [41])
    with pytest.raises(ValueError, match="switch step"):
        make_stage_plan(40, [(60, 104), (30, 52)], [10, 20])
    with pytest.raises(ValueError, match="non-decreasing"):
        make_stage_plan(40, [(60, 104), (45, 78), (30, 52)], [20, 10])
    with pytest.raises(ValueError, match="larger"):
        make_stage_plan(40, [(30, 52), (60, 104)], [10])


def test_shift_composes_and_restage_modes():
    t = torch.linspace(1, 0, 11)
    torch.testing.assert_close(shift_sigmas(shift_sigmas(t, 3.0), 0.5), shift_sigmas(t, 1.5))
    sig = torch.cat([shift_sigmas(torch.linspace(1, 0.1, 10), 3.0), torch.zeros(1)])
    keep = restage_sigmas(sig, 4, 10)
    torch.testing.assert_close(keep, sig[4:])
    trunc = restage_sigmas(sig, 4, 10, first_sigma=0.5, mode="truncate")
    assert trunc[0] == 0.5 and (trunc[1:] < 0.5).all() and trunc[-1] == 0
    assert len(trunc) < len(keep)
    resp = restage_sigmas(sig, 4, 10, first_sigma=0.5, mode="respace")
    assert len(resp) == len(keep) and resp[0] == pytest.approx(0.5) and resp[-1] == 0
    assert (resp[1:] < resp[:-1]).all()
    with pytest.raises(ValueError, match="resume_schedule"):
        restage_sigmas(sig, 4, 10, first_sigma=0.5, mode="bogus")


def test_relative_change():
    a = torch.ones(10)
    assert relative_change(a, a) == 0.0
    assert relative_change(a, 0 * a) == pytest.approx(1.0)
