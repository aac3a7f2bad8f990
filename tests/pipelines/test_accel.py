"""User-side accelerations on SURF: apply, reset at switches, remove, errors (CPU, tiny pipeline)."""

import pytest
import torch

from surf_video.pipelines import SURFPipeline
from surf_video.pipelines.accel import apply_accelerations, remove_accelerations

KW = dict(num_frames=5, num_inference_steps=6, guidance_scale=3.0, switch_step=2, base_height=32, base_width=48,
          preview_height=16, preview_width=32, output_type="latent")


def run(s, seed=0):
    return s("a red circle", generator=torch.Generator().manual_seed(seed), **KW).frames


@pytest.fixture()
def surf(wan):
    s = SURFPipeline.from_pipe(wan)
    s.set_progress_bar_config(disable=True)
    yield s
    s.disable_accelerations()


@pytest.mark.parametrize("make", ["fbc", "taylorseer"])
def test_caches_reset_at_switch_and_remove_cleanly(surf, wan, make):
    from diffusers import FirstBlockCacheConfig

    from surf_video.pipelines.accel import taylorseer_config

    plain = run(surf)
    cfg = {
        "fbc": lambda: FirstBlockCacheConfig(threshold=0.5),
        "taylorseer": lambda: taylorseer_config(cache_interval=2, disable_cache_before_step=1),
    }[make]()
    seen = []
    hook = wan.transformer.register_forward_hook(
        lambda m, a, k, o: seen.append((tuple(k["hidden_states"].shape[-2:]), tuple(o[0].shape[-2:]))), with_kwargs=True)
    try:
        surf.enable_accelerations(cache=cfg)
        out = run(surf)
    finally:
        hook.remove()
    assert out.shape == plain.shape
    # no stale tensors: every forward returns the size it was given, across the switch
    assert all(i == o for i, o in seen) and {i for i, _ in seen} == {(4, 6), (2, 4)}
    surf.disable_accelerations()
    assert not wan.transformer.is_cache_enabled
    assert torch.equal(run(surf), plain)


def test_taylorseer_config_caches_wan_blocks(surf, wan):
    # diffusers' default TaylorSeer identifiers match no Wan module (attn1 / attn2): the shared config must
    # hook Wan's blocks, so a cached run really differs from the plain one, and removing it restores it
    from diffusers import TaylorSeerCacheConfig

    from surf_video.pipelines.accel import taylorseer_config

    plain = run(surf)
    surf.enable_accelerations(cache=TaylorSeerCacheConfig(cache_interval=2, disable_cache_before_step=1))
    assert torch.equal(run(surf), plain)  # the default config skips nothing on Wan
    surf.enable_accelerations(cache=taylorseer_config(cache_interval=2, disable_cache_before_step=1))
    assert not torch.equal(run(surf), plain)
    surf.disable_accelerations()
    assert torch.equal(run(surf), plain)


def test_attention_backend_applies_and_resets(surf, wan):
    plain = run(surf)
    surf.enable_accelerations(attention_backend="native")
    procs = [m.processor for m in wan.transformer.modules() if hasattr(m, "processor")]
    assert procs and all(p._attention_backend == "native" for p in procs)
    torch.testing.assert_close(run(surf), plain, rtol=1e-5, atol=1e-5)
    surf.disable_accelerations()
    assert all(p._attention_backend is None for p in procs)


def test_everything_off_is_plain_surf(surf):
    plain = run(surf)
    surf.enable_accelerations()
    assert torch.equal(run(surf), plain)


def test_compile_marks_blocks_and_removes(wan):
    done = apply_accelerations(wan.transformer, compile=True)
    blocks = [m for m in wan.transformer.modules() if m.__class__.__name__ == "WanTransformerBlock"]
    assert blocks and all(b._compiled_call_impl is not None for b in blocks)
    remove_accelerations(wan.transformer, done)
    assert all(b._compiled_call_impl is None for b in blocks)


@pytest.mark.parametrize("kwargs,match", [
    (dict(cache="fbc"), "cache must be"),
    (dict(attention_backend="warp-drive"), "attention_backend must be one of"),
    (dict(compile="yes"), "compile must be"),
    (dict(quantize="int3"), "quantize must be one of"),
    (dict(quantize="fp8"), "fp8"),
    (dict(attention_backend="sage"), "SageAttention >= 2.1.1.*build it from"),  # not installed in CI
])
def test_bad_options(surf, kwargs, match):
    with pytest.raises(ValueError, match=match):
        surf.enable_accelerations(**kwargs)


@pytest.mark.parametrize("make", ["fbc", "taylorseer"])
def test_cache_state_does_not_carry_across_calls(surf, make):
    # a second call must not start from the first call's cached tensors (which end at the preview size):
    # the pipeline resets the cache at the start of every call, as diffusers pipelines do at their end
    from diffusers import FirstBlockCacheConfig

    from surf_video.pipelines.accel import taylorseer_config

    cfg = {
        "fbc": lambda: FirstBlockCacheConfig(threshold=0.5),
        "taylorseer": lambda: taylorseer_config(cache_interval=2, disable_cache_before_step=1),
    }[make]()
    surf.enable_accelerations(cache=cfg)
    first, second = run(surf), run(surf)
    assert torch.equal(first, second)


def test_fora_reuses_whole_blocks(surf, wan):
    # 'fora' (TaylorSeer of order 0 on whole blocks) hooks each block, not its attentions / FFN, so it keeps one
    # tensor per block and CFG branch; it changes the output, and removing it restores plain SURF
    from surf_video.bench.signature_accel import parse_accelerations

    plain = run(surf)
    (spec,) = parse_accelerations("fora:2:1")
    assert spec.is_cache and spec.params["max_order"] == 0
    surf.enable_accelerations(**spec.kwargs())
    hooked = [n for n, m in wan.transformer.named_modules() if getattr(m, "_diffusers_hook", None) is not None
              and m._diffusers_hook.get_hook("taylorseer_cache") is not None]
    assert hooked == [f"blocks.{i}" for i in range(len(wan.transformer.blocks))]
    assert not torch.equal(run(surf), plain)
    surf.disable_accelerations()
    assert torch.equal(run(surf), plain)
