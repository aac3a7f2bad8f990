"""Degradations are seeded, change the clip, and follow their config."""

import numpy as np
import pytest
import torch

from surf_video.train.config import from_dict
from surf_video.train.degrade import (
    DegradeConfig,
    PixelDegradeConfig,
    blur_kernel,
    degrade_latents,
    degrade_video,
    preview_like,
)

from train_helpers import make_clip


def test_pixel_deterministic_per_seed_and_changes_clip():
    clip = make_clip(t=5, h=32, w=32)
    a, b = degrade_video(clip, seed=3), degrade_video(clip, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == clip.shape and a.dtype == np.uint8
    assert np.abs(a.astype(int) - clip.astype(int)).mean() > 2
    c = degrade_video(clip, seed=4)
    assert not np.array_equal(a, c)


def test_same_degradation_for_every_frame_unless_per_frame():
    frame = make_clip(t=1, h=32, w=32)
    clip = np.repeat(frame, 4, axis=0)  # identical frames
    cfg = PixelDegradeConfig(codec_prob=0.0)
    out = degrade_video(clip, cfg, seed=1)
    # per-clip parameters: identical frames stay nearly identical (only noise samples differ)
    cfg_clean = from_dict(PixelDegradeConfig, {"codec_prob": 0.0, "first": {"gaussian_noise_prob": 0, "poisson_noise_prob": 0},
                                               "second": {"gaussian_noise_prob": 0, "poisson_noise_prob": 0}})
    out = degrade_video(clip, cfg_clean, seed=1)
    for i in range(1, 4):
        np.testing.assert_array_equal(out[0], out[i])
    cfg_pf = from_dict(PixelDegradeConfig, {"per_frame": True, "codec_prob": 0.0,
                                            "first": {"gaussian_noise_prob": 0, "poisson_noise_prob": 0},
                                            "second": {"gaussian_noise_prob": 0, "poisson_noise_prob": 0}})
    out_pf = degrade_video(clip, cfg_pf, seed=1)
    assert any(not np.array_equal(out_pf[0], out_pf[i]) for i in range(1, 4))


def test_codec_and_disabled():
    clip = make_clip(t=4, h=32, w=32)
    cfg = PixelDegradeConfig(codec_prob=1.0, codec_crf=[40, 40], second_order_prob=0.0)
    out = degrade_video(clip, cfg, seed=0)
    assert out.shape == clip.shape
    off = PixelDegradeConfig(enabled=False)
    np.testing.assert_array_equal(degrade_video(clip, off, seed=0), clip)


def test_blur_kernels():
    iso = blur_kernel(7, 1.5, 1.5, 0.0)
    assert iso.shape == (7, 7) and abs(iso.sum() - 1) < 1e-5
    np.testing.assert_allclose(iso, iso.T, atol=1e-7)
    aniso = blur_kernel(9, 3.0, 0.5, 0.0)
    assert aniso[4, :].sum() > aniso[:, 4].sum()  # wider along x
    gen = blur_kernel(7, 1.5, 1.5, 0.0, beta=3.0)
    assert abs(gen.sum() - 1) < 1e-5 and not np.allclose(gen, iso)


def test_latent_degradation_seeded():
    z_hr = torch.randn(4, 3, 8, 8)
    z_lr = z_hr + 0.1 * torch.randn(4, 3, 8, 8)
    cfg = from_dict(DegradeConfig, {"latent": {"noise_prob": 1.0, "noise_level": [0.2, 0.3], "rescale_prob": 1.0,
                                               "rescale_factor": [2.0, 2.0]}, "preview": {"prob": 0.0}})
    a = degrade_latents(z_lr, z_hr, cfg, torch.Generator().manual_seed(5))
    b = degrade_latents(z_lr, z_hr, cfg, torch.Generator().manual_seed(5))
    c = degrade_latents(z_lr, z_hr, cfg, torch.Generator().manual_seed(6))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c) and not torch.equal(a, z_lr)


def test_preview_like_branch():
    z_hr = torch.randn(4, 3, 8, 8)
    cfg = from_dict(DegradeConfig, {"preview": {"prob": 1.0, "factor": 2}})
    out = degrade_latents(torch.zeros_like(z_hr), z_hr, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, preview_like(z_hr, 2))
    # independent reference: per-frame 2x2 average pooling, then bilinear upsampling
    frames = z_hr.permute(1, 0, 2, 3)  # [F, C, H, W]
    ref = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(frames, 2), size=(8, 8), mode="bilinear",
                                          align_corners=False).permute(1, 0, 2, 3)
    torch.testing.assert_close(preview_like(z_hr, 2), ref)
    assert preview_like(z_hr, 2).shape == z_hr.shape


def test_bad_config_raises():
    with pytest.raises(ValueError, match="unknown key"):
        from_dict(DegradeConfig, {"pixel": {"blurr_prob": 0.5}})
    with pytest.raises(ValueError, match="blur_prob"):
        from_dict(DegradeConfig, {"pixel": {"first": {"blur_prob": 2.0}}})
    with pytest.raises(ValueError, match="frames"):
        degrade_video(np.zeros((2, 8, 8), np.uint8))
