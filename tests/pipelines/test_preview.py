"""SURF's preview stage on tiny Wan / HunyuanVideo pipelines built locally."""

import pytest
import torch

from surf_video.pipelines import SURFPipeline

W_KW = dict(num_frames=5, num_inference_steps=6, guidance_scale=3.0, output_type="latent")
SIZES = dict(base_height=32, base_width=48, preview_height=16, preview_width=32)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def surf(pipe):
    s = SURFPipeline.from_pipe(pipe)
    s.set_progress_bar_config(disable=True)
    return s


@pytest.mark.parametrize("fixture", ["wan", "wan_unipc"])
def test_no_switch_equals_wan_pipeline(fixture, request):
    pipe = request.getfixturevalue(fixture)
    ref = pipe("a red circle moving left", height=32, width=48, generator=gen(), **W_KW).frames
    out = surf(pipe)("a red circle moving left", generator=gen(), switch_step=6, base_height=32, base_width=48,
                     preview_height=32, preview_width=48, **W_KW)
    assert out.frames.shape == ref.shape
    torch.testing.assert_close(out.frames, ref, rtol=0, atol=1e-6)


def test_no_switch_equals_hunyuan_pipeline(hunyuan):
    kw = dict(num_frames=5, num_inference_steps=4, output_type="latent")
    ref = hunyuan("a red circle", height=32, width=32, generator=gen(), guidance_scale=6.0, **kw).frames
    out = surf(hunyuan)("a red circle", generator=gen(), guidance_scale=6.0, switch_step=4, base_height=32,
                        base_width=32, preview_height=32, preview_width=32, max_sequence_length=256, **kw)
    torch.testing.assert_close(out.frames, ref, rtol=0, atol=1e-6)


def test_hunyuan_switch_and_true_cfg(hunyuan):
    s = surf(hunyuan)
    calls = []
    h = hunyuan.transformer.register_forward_hook(lambda m, i, k, o: calls.append(k["hidden_states"].shape[-2:]), with_kwargs=True)
    try:
        out = s("a red circle", negative_prompt="a blue square", true_cfg_scale=2.0, num_frames=5,
                num_inference_steps=4, switch_step=1, base_height=32, base_width=32, preview_height=16,
                preview_width=16, output_type="latent", max_sequence_length=256, generator=gen())
    finally:
        h.remove()
    assert out.frames.shape[-2:] == (2, 2)
    assert [tuple(c) for c in calls] == [(4, 4)] * 2 + [(2, 2)] * 6


@pytest.mark.parametrize("k", [0, 2, 5])
def test_forward_passes_per_stage_with_cfg(wan, k):
    shapes = []
    hook = wan.transformer.register_forward_hook(
        lambda m, args, kwargs, out: shapes.append(tuple(kwargs["hidden_states"].shape[-2:])), with_kwargs=True)
    try:
        out = surf(wan)("a red circle", generator=gen(), switch_step=k, **SIZES, **W_KW)
    finally:
        hook.remove()
    assert shapes == [(4, 6)] * (2 * k) + [(2, 4)] * (2 * (6 - k))
    assert out.frames.shape == (1, 16, 2, 2, 4)
    assert out.switch_steps == [k]
    assert sum(out.num_evaluations.values()) == 12


def test_three_stage_plan(wan):
    shapes = []
    hook = wan.transformer.register_forward_hook(
        lambda m, args, kwargs, out: shapes.append(tuple(kwargs["hidden_states"].shape[-2:])), with_kwargs=True)
    try:
        out = surf(wan)("a red circle", generator=gen(), switch_step=[2, 4],
                        stage_sizes=[(64, 64), (48, 48), (32, 32)], **W_KW)
    finally:
        hook.remove()
    assert shapes == [(8, 8)] * 4 + [(6, 6)] * 4 + [(4, 4)] * 4
    assert out.frames.shape[-2:] == (4, 4)
    assert out.switch_steps == [2, 4]


@pytest.mark.parametrize("renoise", ["flow", "paper", "snr"])
@pytest.mark.parametrize("fixture", ["wan", "wan_unipc"])
def test_seeded_runs_are_reproducible(fixture, renoise, request):
    s = surf(request.getfixturevalue(fixture))
    a = s("a red circle", generator=gen(3), switch_step=2, renoise=renoise, **SIZES, **W_KW).frames
    b = s("a red circle", generator=gen(3), switch_step=2, renoise=renoise, **SIZES, **W_KW).frames
    c = s("a red circle", generator=gen(4), switch_step=2, renoise=renoise, **SIZES, **W_KW).frames
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_renoise_forms_differ(wan):
    s = surf(wan)
    outs = {r: s("a red circle", generator=gen(), switch_step=2, renoise=r, **SIZES, **W_KW) for r in ("flow", "paper", "snr")}
    assert not torch.allclose(outs["flow"].frames, outs["paper"].frames)
    # snr resumes below the switch sigma and (truncate) skips steps
    assert outs["snr"].stage_sigmas[1][0] < outs["flow"].stage_sigmas[1][0]
    assert outs["snr"].num_evaluations["stage1"] <= outs["flow"].num_evaluations["stage1"]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_snr_same_size_reproduces_no_switch(wan, k):
    s = surf(wan)
    same = dict(base_height=32, base_width=48, preview_height=32, preview_width=48)
    ref = s("a red circle", generator=gen(), switch_step=6, **same, **W_KW).frames
    out = s("a red circle", generator=gen(), switch_step=k, renoise="snr", **same, **W_KW).frames
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_stage_shift_lowers_preview_sigmas(wan):
    s = surf(wan)
    a = s("a red circle", generator=gen(), switch_step=2, **SIZES, **W_KW)
    b = s("a red circle", generator=gen(), switch_step=2, stage_shift=True, **SIZES, **W_KW)
    assert b.stage_sigmas[1][0] < a.stage_sigmas[1][0]


def test_auto_switch_is_deterministic_and_bounded(wan):
    s = surf(wan)
    kw = dict(switch_step="auto", min_switch_step=2, max_switch_step=4, **SIZES, **W_KW)
    a = s("a red circle", generator=gen(), auto_switch_tol=0.5, **kw)
    b = s("a red circle", generator=gen(), auto_switch_tol=0.5, **kw)
    assert a.switch_steps == b.switch_steps and torch.equal(a.frames, b.frames)
    assert 2 <= a.switch_steps[0] <= 4
    tight = s("a red circle", generator=gen(), auto_switch_tol=1e-9, **kw)
    assert tight.switch_steps == [4]  # never settles: switches at the upper bound
    loose = s("a red circle", generator=gen(), auto_switch_tol=1e9, **kw)
    assert loose.switch_steps == [2]  # settles at once: switches at the lower bound
    assert loose.num_evaluations["stage0"] == 4 and loose.num_evaluations["stage1"] == 8


def test_callback_sees_every_step(wan):
    seen = []

    def cb(pipe, i, t, kw):
        seen.append((i, tuple(kw["latents"].shape[-2:])))
        return {}

    surf(wan)("a red circle", generator=gen(), switch_step=2, callback_on_step_end=cb, **SIZES, **W_KW)
    assert [i for i, _ in seen] == list(range(6))
    assert seen[1][1] == (4, 6) and seen[2][1] == (2, 4)


def test_decode_np_shape(wan):
    out = surf(wan)("a red circle", generator=gen(), switch_step=2, **SIZES,
                    **{**W_KW, "output_type": "np"})
    assert out.frames.shape == (1, 5, 16, 32, 3)
    assert "decode" in out.timings


def test_cache_is_reset_at_switch(wan):
    from diffusers import FirstBlockCacheConfig

    wan.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.5))
    try:
        out = surf(wan)("a red circle", generator=gen(), switch_step=2, **SIZES, **W_KW)
    finally:
        wan.transformer.disable_cache()
    assert out.frames.shape[-2:] == (2, 4)


ERRORS = [
    (dict(num_frames=6), "num_frames"),
    (dict(base_height=40), "multiples of 16"),
    (dict(preview_height=24), "multiples of 16"),
    (dict(switch_step=7), "switch_step"),
    (dict(switch_step=-1), "switch_step"),
    (dict(preview_height=64, base_height=32), "larger"),
    (dict(renoise="fresh"), "renoise"),
    (dict(resize_mode="lanczos"), "resize_mode"),
    (dict(switch_step="auto", min_switch_step=5, max_switch_step=3), "min_switch_step"),
    (dict(switch_step="auto", auto_switch_tol=0), "auto_switch_tol"),
    (dict(output_type="gif"), "output_type"),
    (dict(height=64, width=96), "refiner"),
    (dict(prompt=""), "prompt"),
    (dict(latents=torch.zeros(1, 4, 2, 4, 6)), "channels"),
]


@pytest.mark.parametrize("kwargs,match", ERRORS)
def test_input_errors(wan, kwargs, match):
    s = surf(wan)
    calls = []
    h = wan.transformer.register_forward_hook(lambda *a: calls.append(1))
    args = {**SIZES, **W_KW, "prompt": "a red circle", "generator": gen(), "switch_step": 2}
    args.update(kwargs)
    try:
        with pytest.raises(ValueError, match=match):
            s(**args)
    finally:
        h.remove()
    assert calls == []  # raised before any model work


def test_unsupported_pipeline_and_scheduler(wan):
    from diffusers import DDIMScheduler

    with pytest.raises(ValueError, match="not supported"):
        SURFPipeline.from_pipe(object())
    sched = wan.scheduler
    try:
        wan.scheduler = DDIMScheduler()
        with pytest.raises(ValueError, match="scheduler"):
            SURFPipeline.from_pipe(wan)
    finally:
        wan.scheduler = sched


@pytest.mark.parametrize("schedule", ["truncate", "respace"])
def test_snr_three_stages_unipc(wan_unipc, schedule):
    shapes = []
    hook = wan_unipc.transformer.register_forward_hook(
        lambda m, args, kwargs, out: shapes.append(tuple(kwargs["hidden_states"].shape[-2:])), with_kwargs=True)
    try:
        out = surf(wan_unipc)("a red circle", generator=gen(), switch_step=[2, 4], renoise="snr",
                              resume_schedule=schedule, stage_sizes=[(64, 64), (48, 48), (32, 32)], **W_KW)
    finally:
        hook.remove()
    assert out.frames.shape[-2:] == (4, 4) and torch.isfinite(out.frames).all()
    assert shapes[:4] == [(8, 8)] * 4
    n_mid, n_last = shapes.count((6, 6)) // 2, shapes.count((4, 4)) // 2
    if schedule == "respace":  # same number of steps, re-spaced from the resumed sigma
        assert (n_mid, n_last) == (2, 2)
    else:  # truncation may skip steps, never adds any
        assert n_mid <= 2 and n_last <= 2
    # every resumed stage starts below the sigma it left from
    assert out.stage_sigmas[1][0] < out.stage_sigmas[0][2] and out.stage_sigmas[2][0] < out.stage_sigmas[1][-1] + 1e-6


def test_snr_on_hunyuan(hunyuan):
    out = surf(hunyuan)("a red circle", num_frames=5, num_inference_steps=4, switch_step=2, renoise="snr",
                        base_height=32, base_width=32, preview_height=16, preview_width=16, output_type="latent",
                        max_sequence_length=256, generator=gen())
    assert out.frames.shape[-2:] == (2, 2) and torch.isfinite(out.frames).all()
    assert out.stage_sigmas[1][0] < out.stage_sigmas[0][2]
