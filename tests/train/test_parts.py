"""The Trainer's pure parts: the lr schedule and the flow-mapping loss."""

import math

import pytest
import torch

from surf_video.train.parts import flow_mapping_loss, lr_lambda, refine


def test_lr_lambda_warmup_then_each_schedule():
    for schedule in ("constant", "cosine", "linear"):
        f = lr_lambda(4, 14, schedule)
        assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_lambda(4, 14, "constant")(13) == 1.0
    assert lr_lambda(4, 14, "cosine")(9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_lambda(4, 14, "cosine")(14) == pytest.approx(0.0, abs=1e-12)
    assert lr_lambda(4, 14, "linear")(9) == pytest.approx(0.5)
    assert lr_lambda(0, 10, "linear")(0) == 1.0  # no warm-up


def test_flow_mapping_loss_is_zero_for_the_exact_velocity():
    z_hr, z_lr = torch.randn(2, 4, 3, 4, 4), torch.randn(2, 4, 3, 4, 4)

    def model(hidden_states, timestep, encoder_hidden_states, return_dict):  # the true velocity field
        return (z_lr - z_hr,)

    assert flow_mapping_loss(model, z_hr, z_lr, None, torch.tensor([0.2, 0.7])).item() == 0.0


def test_refine_is_uniform_euler_from_the_lr_latent():
    # a model predicting v = z_lr - z_hr exactly maps z_lr to z_hr in any number of steps
    z_hr, z_lr = torch.randn(2, 4, 2, 3, 3), torch.randn(2, 4, 2, 3, 3)
    seen = []

    def model(hidden_states, timestep, encoder_hidden_states, return_dict):
        seen.append(timestep.clone())
        return (z_lr - z_hr,)

    out = refine(model, z_lr, torch.zeros(2, 1, 8), num_steps=4)
    torch.testing.assert_close(out, z_hr, rtol=1e-5, atol=1e-5)
    assert [float(t[0]) for t in seen] == pytest.approx([1000.0, 750.0, 500.0, 250.0])
