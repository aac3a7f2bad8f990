"""The shipped SURF-Mini weights (src/surf_video/assets/surf-mini): load, run at every size, determinism."""

import numpy as np
import pytest
import torch

from surf_video.mini.config import MAX_SEQUENCE_LENGTH, NUM_FRAMES, SUPPORTED_SIZES
from surf_video.mini.loading import (
    SURF_MINI_PATH,
    has_surf_mini,
    has_surf_mini_refiner,
    load_surf_mini,
    load_surf_mini_refiner,
)

pytestmark = pytest.mark.skipif(not has_surf_mini(), reason="SURF-Mini weights not present")

PROMPT = "a big red circle moving right on a plain gray background"


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return load_surf_mini()


def _run(pipe, size, seed=0, steps=1, guidance=1.0, frames=5):
    return pipe(PROMPT, height=size, width=size, num_frames=frames, num_inference_steps=steps,
                guidance_scale=guidance, generator=torch.Generator().manual_seed(seed), output_type="np",
                max_sequence_length=MAX_SEQUENCE_LENGTH).frames  # fmt: skip


def test_shipped_is_a_wan_pipeline_stored_as_safetensors(pipe):
    from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel
    from transformers import UMT5EncoderModel

    assert isinstance(pipe, WanPipeline)
    assert isinstance(pipe.transformer, WanTransformer3DModel) and isinstance(pipe.vae, AutoencoderKLWan)
    assert isinstance(pipe.text_encoder, UMT5EncoderModel)
    assert pipe.transformer.dtype == torch.float32  # stored fp16, upcast on load
    assert pipe.vae.config.scale_factor_spatial == 8 and pipe.vae.config.scale_factor_temporal == 4
    files = [p for p in SURF_MINI_PATH.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
    assert sum(p.stat().st_size for p in files) < 100e6
    assert max(p.stat().st_size for p in files) < 20e6  # big weights are sharded (git hosts warn on large files)


@pytest.mark.parametrize("size", SUPPORTED_SIZES)
def test_runs_at_every_supported_size(pipe, size):
    video = _run(pipe, size)
    assert video.shape == (1, 5, size, size, 3)
    assert np.isfinite(video).all() and video.min() >= 0 and video.max() <= 1


def test_full_clip_with_cfg_is_deterministic_per_seed(pipe):
    a = _run(pipe, 64, seed=3, steps=2, guidance=5.0, frames=NUM_FRAMES)
    b = _run(pipe, 64, seed=3, steps=2, guidance=5.0, frames=NUM_FRAMES)
    c = _run(pipe, 64, seed=4, steps=2, guidance=5.0, frames=NUM_FRAMES)
    assert a.shape == (1, NUM_FRAMES, 64, 64, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_dtype_and_missing_folder_raise(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        load_surf_mini(dtype=torch.int8)
    with pytest.raises(FileNotFoundError):
        load_surf_mini(tmp_path)
    with pytest.raises(FileNotFoundError, match="refiner"):
        load_surf_mini_refiner(tmp_path)


def test_base_follows_prompts_per_world_evaluator(pipe):
    """v6 follows 82 of the 100 fixed evaluation prompts at CFG 3 (model card), v5 77, v4 69; v0 and v1 followed none."""
    from surf_video.mini.data import EVAL_SEED_BASE, eval_captions
    from surf_video.mini.train_base import adherence, generate_eval

    caps = eval_captions(10)
    vids = generate_eval(pipe, caps, 128, [EVAL_SEED_BASE + i for i in range(len(caps))], batch=5)
    res = adherence(vids, caps)
    assert res["all_correct"] >= 0.5 and res["color"] >= 0.8, res


def test_vae_per_frame_psnr_probe_reads_the_shipped_vae():
    from surf_video.mini.vae_probe import per_frame_psnr

    vals = per_frame_psnr(str(SURF_MINI_PATH / "vae"), clips=2, size=64)
    assert len(vals) == NUM_FRAMES and all(10.0 < v < 60.0 for v in vals)


@pytest.mark.skipif(not has_surf_mini_refiner(), reason="no shipped SURF-Mini refiner")
def test_shipped_refiner_maps_a_preview_latent_to_both_targets(pipe):
    from surf_video.mini.config import PREVIEW_SIZE, TARGET_SIZES
    from surf_video.mini.train_refiner import refine_latents

    refiner = load_surf_mini_refiner()
    gen = torch.Generator().manual_seed(0)
    z_small = torch.randn(1, pipe.vae.config.z_dim, 2, PREVIEW_SIZE // 8, PREVIEW_SIZE // 8, generator=gen)
    emb = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False, max_sequence_length=MAX_SEQUENCE_LENGTH)[0]
    for size in TARGET_SIZES:
        a = refine_latents(refiner, z_small, (size // 8, size // 8), emb, steps=2)
        b = refine_latents(refiner, z_small, (size // 8, size // 8), emb, steps=2)
        assert a.shape == (1, pipe.vae.config.z_dim, 2, size // 8, size // 8)
        assert torch.isfinite(a).all() and torch.equal(a, b)


@pytest.mark.skipif(not has_surf_mini_refiner(), reason="no shipped SURF-Mini refiner")
def test_vsr_eval_reports_refiner_bicubic_and_the_latent_rows(pipe):
    from surf_video.mini.config import TARGET_SIZES
    from surf_video.mini.train_refiner import VSR_SEED_BASE, vsr_eval

    res = vsr_eval(load_surf_mini_refiner(), pipe.vae, pipe.text_encoder, pipe.tokenizer, [VSR_SEED_BASE], steps=1)
    assert res["n_clips"] == 1
    for size in TARGET_SIZES:
        row = res[str(size)]
        for name in ("refiner", "bicubic", "latent_upsample", "vae_roundtrip", "decoded_bicubic", "refiner_backproj",
                     "bicubic_backproj", "vae_roundtrip_backproj"):
            assert 5.0 < row[f"{name}_psnr"] < 80.0 and 0.0 < row[f"{name}_ssim"] <= 1.0, (size, name, row)
        assert row["refiner_backproj_psnr"] > row["refiner_psnr"]  # the 64 px render pulls the refiner's frames closer


def test_train_base_refuses_to_shrink_a_resumed_base(tmp_path):
    from surf_video.mini.recipe import BaseRecipe
    from surf_video.mini.train_base import train_base

    with pytest.raises(ValueError, match="grow_layers must be >= the transformer's 16 blocks"):
        train_base(BaseRecipe(grow_layers=8), SURF_MINI_PATH / "vae", tmp_path / "out", resume=SURF_MINI_PATH,
                   device="cpu", final_eval=0)
