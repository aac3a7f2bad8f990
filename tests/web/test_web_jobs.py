"""The web demo's Gradio-free functions: sizes, input checks, batched previews per session, refinement."""

import threading

import numpy as np
import pytest
import torch

from surf_video.api import load_preview
from surf_video.core.reshift import resize_latent
from surf_video.io.video import read_video
from surf_video.web.app import format_timings
from surf_video.web.jobs import (
    DemoModel,
    JobCancelled,
    PreviewStore,
    check_num_previews,
    check_prompt,
    make_previews,
    parse_size,
    parse_switch_step,
    refine_preview,
    supported_target_sizes,
)

PROMPT = "a red circle moving right"


@pytest.fixture()
def store(tmp_path):
    return PreviewStore(tmp_path / "store")


def test_target_sizes_come_from_the_models(tiny_model):
    # tiny-wan: preview 16x16 (half its 32x32 base size); 2x/3x/4x are multiples of its VAE x patch (16)
    assert tiny_model.preview_size == (16, 16)
    assert tiny_model.target_sizes == [(32, 32), (48, 48), (64, 64)]
    assert tiny_model.call_defaults == {"num_frames": 5, "num_inference_steps": 8, "guidance_scale": 3.0,
                                        "switch_step": 3}
    no_refiner = DemoModel.from_pipe(type(tiny_model.pipe).from_pipe(tiny_model.pipe.base), "tiny-wan")
    assert supported_target_sizes(no_refiner.pipe, "tiny-wan") == []
    with pytest.raises(ValueError, match="no refiner"):
        parse_size("32x32", no_refiner.target_sizes)


def test_input_checks_name_the_input():
    assert check_prompt("  a dog ") == "a dog"
    for bad in ("", "   ", None):
        with pytest.raises(ValueError, match="Prompt"):
            check_prompt(bad)
    assert check_num_previews(3) == 3 and check_num_previews(2.0) == 2 and check_num_previews("4") == 4
    for bad in (0, 5, 2.5, "two", None):
        with pytest.raises(ValueError, match="Number of previews"):
            check_num_previews(bad, cap=4)
    allowed = [(32, 32), (48, 48)]
    assert parse_size("48x48", allowed) == (48, 48) and parse_size(32, allowed) == (32, 32)
    for bad in ("64x64", "40", "big", None, (48, 32), "48x48x48"):
        with pytest.raises(ValueError, match="Target size.*32x32, 48x48"):
            parse_size(bad, allowed)
    assert parse_switch_step("auto", 8) == "auto" and parse_switch_step("3", 8) == 3 and parse_switch_step(0, 8) == 0
    for bad in ("9", -1, "1.5", "soon", None):
        with pytest.raises(ValueError, match="Switch step"):
            parse_switch_step(bad, 8)


def test_bad_input_fails_before_model_work(tiny_model, store):
    with pytest.raises(ValueError, match="Prompt"):
        make_previews(tiny_model, store, "s1", "", num_previews=2)
    with pytest.raises(ValueError, match="at most 4"):
        make_previews(tiny_model, store, "s1", PROMPT, num_previews=9)
    with pytest.raises(ValueError, match="Re-noise"):
        make_previews(tiny_model, store, "s1", PROMPT, renoise="loud")
    with pytest.raises(ValueError, match="Session"):
        make_previews(tiny_model, store, "../etc", PROMPT)
    assert not any(store.root.iterdir())


def test_previews_are_one_batch_seeded_per_item_and_stored(tiny_model, store):
    calls, steps = [], []
    base = tiny_model.pipe.base.transformer
    h = base.register_forward_pre_hook(lambda m, a, k: calls.append(k["hidden_states"].shape[0]), with_kwargs=True)
    try:
        batch = make_previews(tiny_model, store, "s1", PROMPT, seed=5, num_previews=3, switch_step="3",
                              progress=lambda i, n, d: steps.append((i, n)))
    finally:
        h.remove()
    # one batched call: each of the 8 steps makes 2 passes (Wan's two-pass guidance), each with all 3 previews
    assert calls == [3] * 16
    assert steps == [(i, 8) for i in range(1, 9)]
    assert [r.seed for r in batch.previews] == [5, 6, 7] and batch.switch_steps == [3] and batch.shape == (5, 16, 16)
    assert {"text", "stage0", "stage1", "decode", "total", "process_cpu"} <= set(batch.timings)
    for rec in batch.previews:
        assert read_video(rec.video).shape == (5, 16, 16, 3)
        lat, meta = load_preview(rec.latents)
        assert lat.shape == (1, 16, 2, 2, 2) and meta["seed"] == rec.seed and meta["prompt"] == PROMPT
    # preview i is reproducible alone from its seed
    alone = tiny_model.pipe(PROMPT, generator=[torch.Generator().manual_seed(6)], num_previews=1, output_type="latent",
                            **dict(tiny_model.call_defaults, switch_step=3)).preview_latents
    torch.testing.assert_close(alone, load_preview(batch.previews[1].latents)[0], atol=1e-4, rtol=1e-4)


def test_refine_uses_the_saved_latents_without_regeneration(tiny_model, store):
    batch = make_previews(tiny_model, store, "s1", PROMPT, seed=0, num_previews=2)
    pid = batch.previews[1].id
    base_calls, steps, first_inputs = [], [], []
    h = tiny_model.pipe.base.transformer.register_forward_pre_hook(lambda m, a: base_calls.append(1))
    h2 = tiny_model.pipe.refiner.register_forward_pre_hook(
        lambda m, a, k: first_inputs.append(k["hidden_states"].clone()) if not first_inputs else None,
        with_kwargs=True)
    try:
        res = refine_preview(tiny_model, store, "s1", pid, target_size="48x48", refine_steps=3,
                             progress=lambda i, n, d: steps.append((i, n)))
    finally:
        h.remove()
        h2.remove()
    assert base_calls == [] and steps == [(1, 3), (2, 3), (3, 3)]
    assert (res.height, res.width, res.num_frames) == (48, 48, 5) and res.preview_id == pid
    assert read_video(res.video).shape == (5, 48, 48, 3)
    # the flow map starts from the chosen preview's saved latents, upsampled to 48 px (6 latent px)
    saved = [resize_latent(load_preview(r.latents)[0], (6, 6), "bilinear") for r in batch.previews]
    torch.testing.assert_close(first_inputs[0], saved[1])
    assert not torch.allclose(first_inputs[0], saved[0])
    again = refine_preview(tiny_model, store, "s1", pid, target_size="48x48", refine_steps=3)
    assert again.video != res.video
    np.testing.assert_array_equal(read_video(again.video), read_video(res.video))
    other = refine_preview(tiny_model, store, "s1", batch.previews[0].id, target_size="48x48", refine_steps=3)
    assert np.any(read_video(other.video)[0] != read_video(res.video)[0])


def test_previews_belong_to_their_session(tiny_model, store):
    batch = make_previews(tiny_model, store, "alice", PROMPT, num_previews=1)
    pid = batch.previews[0].id
    with pytest.raises(ValueError, match="no longer stored"):
        refine_preview(tiny_model, store, "bob", pid, target_size="32x32", refine_steps=1)
    for bad in ("../alice/x", "nope", None):
        with pytest.raises(ValueError, match="Preview"):
            refine_preview(tiny_model, store, "alice", bad, target_size="32x32", refine_steps=1)
    with pytest.raises(ValueError, match="Target size"):
        refine_preview(tiny_model, store, "alice", pid, target_size="40x40", refine_steps=1)
    with pytest.raises(ValueError, match="Refine steps"):
        refine_preview(tiny_model, store, "alice", pid, target_size="32x32", refine_steps=0)
    store.remove_session("alice")  # what a restart with a fresh store looks like to the page
    with pytest.raises(ValueError, match="no longer stored.*make new previews"):
        refine_preview(tiny_model, store, "alice", pid, target_size="32x32", refine_steps=1)


def test_cancel_stops_a_running_job_between_steps(tiny_model, store):
    cancel, seen = threading.Event(), []

    def progress(i, n, desc):
        seen.append(i)
        if i == 2:
            cancel.set()

    with pytest.raises(JobCancelled):
        make_previews(tiny_model, store, "s1", PROMPT, num_previews=1, progress=progress, cancel=cancel)
    assert seen == [1, 2]
    assert not list((store.root / "s1").glob("*.safetensors"))
    batch = make_previews(tiny_model, store, "s1", PROMPT, num_previews=1)
    cancel2, seen2 = threading.Event(), []

    def progress2(i, n, desc):
        seen2.append(i)
        cancel2.set()

    with pytest.raises(JobCancelled):
        refine_preview(tiny_model, store, "s1", batch.previews[0].id, target_size="32x32", refine_steps=5,
                       progress=progress2, cancel=cancel2)
    assert seen2 == [1]
    assert not list((store.root / "s1").glob("*_refined_*"))
    assert not tiny_model.pipe.refiner._forward_pre_hooks  # the progress hook is removed after a job


def test_format_timings():
    line = format_timings({"text": 0.1, "stage0": 1.0, "stage1": 0.5, "decode": 0.25, "total": 1.9,
                           "process_cpu": 3.5}, "cpu")
    assert line.startswith("**1.90 s** on cpu")
    assert "text encoder 0.10 s · stage 0 1.00 s · stage 1 0.50 s · VAE decode 0.25 s" in line
    assert line.endswith("(process CPU time 3.50 s)")
