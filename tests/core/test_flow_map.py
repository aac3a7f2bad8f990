"""Flow-mapping sampler, its timesteps, noise augmentation and the latent upsampler."""

import pytest
import torch
import torch.nn.functional as F

from surf_video.core.flow_map import (
    augment_lr_latent,
    flow_map_interpolate,
    flow_map_sample,
    flow_map_timesteps,
    flow_map_velocity,
    upsample_latent,
)


def _pair(seed=0, shape=(2, 4, 3, 6, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_exact_velocity_maps_lr_to_hr(steps):
    z_hr, z_lr = _pair()
    calls = []

    def model_fn(z, t):
        calls.append(t.clone())
        assert t.shape == (2,)
        # on the path, z_t = (1 - t) z_hr + t z_lr: check the sampler keeps us on it
        torch.testing.assert_close(z, flow_map_interpolate(z_hr, z_lr, t), atol=1e-5, rtol=1e-5)
        return flow_map_velocity(z_hr, z_lr)

    out = flow_map_sample(model_fn, z_lr, num_steps=steps)
    torch.testing.assert_close(out, z_hr, atol=1e-5, rtol=1e-5)
    assert len(calls) == steps
    assert calls[0].tolist() == [1.0, 1.0]


def test_wrong_velocity_does_not_reach_hr():
    z_hr, z_lr = _pair()
    out = flow_map_sample(lambda z, t: 0.5 * (z_lr - z_hr), z_lr, num_steps=4)
    assert not torch.allclose(out, z_hr, atol=1e-3)
    torch.testing.assert_close(out, 0.5 * (z_lr + z_hr))


def test_callback_and_progress():
    _, z_lr = _pair()
    seen = []
    flow_map_sample(lambda z, t: torch.zeros_like(z), z_lr, num_steps=3, progress=True,
                    callback=lambda i, t, z: seen.append((i, float(t[0]))))  # fmt: skip
    assert [i for i, _ in seen] == [0, 1, 2]
    assert seen[-1][1] == 0.0


def test_timesteps():
    t = flow_map_timesteps(4)
    assert t.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    ts = flow_map_timesteps(4, shift=3.0)
    assert ts[0] == 1.0 and ts[-1] == 0.0
    assert torch.all(ts[1:] < ts[:-1])
    assert torch.all(ts[1:-1] > t[1:-1])  # a shift > 1 keeps t higher for longer
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="num_steps"):
            flow_map_timesteps(bad)
    with pytest.raises(ValueError, match="shift"):
        flow_map_timesteps(3, shift=0)


def test_noise_aug_deterministic_per_generator():
    _, z_lr = _pair()
    a = augment_lr_latent(z_lr, 0.1, torch.Generator().manual_seed(3))
    b = augment_lr_latent(z_lr, 0.1, torch.Generator().manual_seed(3))
    c = augment_lr_latent(z_lr, 0.1, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert 0.05 < float((a - z_lr).std()) < 0.15
    assert augment_lr_latent(z_lr, 0.0) is z_lr
    with pytest.raises(ValueError, match="noise_aug"):
        augment_lr_latent(z_lr, -0.1)

    def run(seed):
        return flow_map_sample(lambda z, t: torch.zeros_like(z), z_lr, num_steps=2, noise_aug=0.2,
                               generator=torch.Generator().manual_seed(seed))  # fmt: skip

    assert torch.equal(run(1), run(1))
    assert not torch.allclose(run(1), run(2))
    # with zero velocity the sampler returns the augmented start
    torch.testing.assert_close(run(1), augment_lr_latent(z_lr, 0.2, torch.Generator().manual_seed(1)))


def test_sample_rejects_bad_input():
    with pytest.raises(ValueError, match="z_lr"):
        flow_map_sample(lambda z, t: z, torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="model_fn"):
        flow_map_sample(lambda z, t: z[:, :1], torch.zeros(1, 2, 1, 2, 2))


def test_upsample_latent_spatial_only():
    z = torch.randn(2, 4, 3, 5, 7)
    up = upsample_latent(z, (10, 14))
    assert up.shape == (2, 4, 3, 10, 14)
    per_frame = torch.stack(
        [F.interpolate(z[:, :, i], size=(10, 14), mode="bilinear", align_corners=False) for i in range(3)], dim=2
    )
    torch.testing.assert_close(up, per_frame, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(upsample_latent(z, (10, 14), mode="bilinear"), per_frame, atol=1e-6, rtol=1e-6)
    # frames stay independent: changing frame 0 leaves frames 1, 2 unchanged
    z2 = z.clone()
    z2[:, :, 0] += 1
    assert torch.equal(upsample_latent(z2, (10, 14))[:, :, 1:], up[:, :, 1:])
    near = upsample_latent(z, (10, 14), mode="nearest")
    assert torch.equal(near[..., ::2, ::2], z)
    assert upsample_latent(z.bfloat16(), (6, 9)).dtype == torch.bfloat16


def test_upsample_latent_errors():
    z = torch.randn(1, 2, 1, 4, 4)
    with pytest.raises(ValueError, match="mode"):
        upsample_latent(z, (8, 8), mode="cubic3d")
    with pytest.raises(ValueError, match="size"):
        upsample_latent(z, (0, 8))
    with pytest.raises(ValueError, match="z must"):
        upsample_latent(z[0], (8, 8))
