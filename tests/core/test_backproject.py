"""Back-projection of super-resolved frames onto their low-resolution source."""

import pytest
import torch
import torch.nn.functional as F

from surf_video.core import back_project


def _area(x, size):
    return F.interpolate(x.reshape(-1, 1, *x.shape[-2:]), size=size, mode="area").reshape(*x.shape[:-2], *size)


@pytest.mark.parametrize("hr", [48, 72])  # 3x and the fractional 4.5x of SURF-Mini's 64 -> 192 / 288
def test_back_projection_makes_the_estimate_agree_with_the_lr_frames(hr):
    g = torch.Generator().manual_seed(0)
    truth = F.interpolate(torch.rand(2, 3, 4, 8, 8, generator=g).flatten(0, 1), size=(hr, hr), mode="bilinear")
    truth = truth.reshape(2, 3, 4, hr, hr)  # [B, C, T, H, W]: any leading dims
    lr = _area(truth, (16, 16))
    x = (truth + 0.2 * torch.randn(truth.shape, generator=g)).clamp(0, 1)  # a noisy estimate
    errs = [(_area(back_project(x, lr, k, clamp=None), (16, 16)) - lr).abs().max().item() for k in (0, 1, 3, 10)]
    assert errs[1] < errs[0] and errs[2] < errs[1] and errs[3] < 1e-2 * errs[0], errs
    out = back_project(x, lr, 3)
    assert out.shape == x.shape and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    assert F.mse_loss(out, truth) < F.mse_loss(x, truth)  # closer to the truth, not only to its average


def test_back_projection_leaves_a_consistent_estimate_and_zero_iterations_alone():
    lr = torch.rand(3, 8, 8)
    x = lr.repeat_interleave(3, -1).repeat_interleave(3, -2)  # nearest 3x: its area average is lr exactly
    torch.testing.assert_close(back_project(x, lr, 5), x, rtol=0, atol=1e-6)
    y = torch.rand(3, 24, 24) * 3
    assert torch.equal(back_project(y, lr, 0, clamp=None), y)


@pytest.mark.parametrize("x, lr, it, msg", [
    (torch.rand(3, 8, 8), torch.rand(3, 16, 16), 1, "lr \\(16x16\\) must not be larger than x \\(8x8\\)"),
    (torch.rand(3, 16, 16), torch.rand(2, 8, 8), 1, "must share their leading dims"),
    (torch.rand(3, 16, 16), torch.rand(3, 8, 8), -1, "iterations must be an int >= 0, got -1"),
    (torch.rand(3, 16, 16), torch.rand(3, 8, 8), 2.5, "iterations must be an int >= 0, got 2.5"),
    (torch.rand(3, 16, 16), torch.zeros(3, 8, 8, dtype=torch.uint8), 1, "lr must be floating point"),
])  # fmt: skip
def test_back_projection_errors_name_the_argument(x, lr, it, msg):
    with pytest.raises(ValueError, match=msg):
        back_project(x, lr, it)
