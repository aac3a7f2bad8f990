"""SURF-Mini building blocks: tokenizer, recipes, random-weight pipeline, fp16 export."""

import inspect
import json

import numpy as np
import pytest
import torch

from surf_video.mini.build import build_pipeline, build_tokenizer, caption_words
from surf_video.mini.config import MAX_SEQUENCE_LENGTH, MiniConfig, TextEncoderConfig, TransformerConfig, VAEConfig
from surf_video.mini.export import halve_safetensors, shard_safetensors
from surf_video.mini.recipe import load_recipe
from surf_video.world import VOCAB, sample_scene


def test_tokenizer_covers_world_captions_and_appends_eos():
    tok = build_tokenizer()
    unk = tok.unk_token_id
    for seed in range(50):
        cap = sample_scene(seed).caption
        ids = tok(cap).input_ids
        assert unk not in ids, cap
        assert ids[-1] == tok.eos_token_id
        assert len(ids) == len(cap.split()) + 1
        assert len(ids) <= MAX_SEQUENCE_LENGTH
    assert all(tok.convert_tokens_to_ids(w) != unk for w in VOCAB)


def test_tokenizer_lowercases_splits_punctuation_and_pads():
    tok = build_tokenizer()
    a = tok("A Red circle, moving LEFT", padding="max_length", max_length=12)
    b = tok("a red circle , moving left", padding="max_length", max_length=12)
    assert a.input_ids == b.input_ids
    assert a.input_ids[7:] == [tok.pad_token_id] * 5 and sum(a.attention_mask) == 7
    assert tok("zebra").input_ids[0] == tok.unk_token_id
    assert tok("").input_ids == [tok.eos_token_id]
    assert caption_words("Moving up-left, fast.") == ["moving", "up-left", ",", "fast", "."]


def test_tokenizer_save_load_round_trip(tmp_path):
    from transformers import PreTrainedTokenizerFast

    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    again = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    cap = sample_scene(3).caption
    assert again(cap).input_ids == tok(cap).input_ids


def test_recipe_overrides_and_rejects_unknown_keys(tmp_path):
    r = load_recipe("base", max_steps=7, max_minutes=None)
    assert r.max_steps == 7 and r.max_minutes > 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 1\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_recipe("vae", bad)
    with pytest.raises(ValueError, match="kind"):
        load_recipe("unet")


def _tiny_cfg():
    return MiniConfig(
        text_encoder=TextEncoderConfig(d_model=32, d_kv=8, num_heads=4, num_layers=1, d_ff=64),
        vae=VAEConfig(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1]),
        transformer=TransformerConfig(num_attention_heads=2, attention_head_dim=16, num_layers=1, ffn_dim=32, freq_dim=16),
    )


def test_random_pipeline_runs_and_is_deterministic():
    pipe = build_pipeline(_tiny_cfg())
    pipe.set_progress_bar_config(disable=True)
    kw = dict(height=32, width=32, num_frames=5, num_inference_steps=2, output_type="np", max_sequence_length=16)
    a = pipe("a red circle moving left", generator=torch.Generator().manual_seed(0), **kw).frames
    b = pipe("a red circle moving left", generator=torch.Generator().manual_seed(0), **kw).frames
    assert a.shape == (1, 5, 32, 32, 3)
    assert (a == b).all()


def test_halve_safetensors_round_trip(tmp_path):
    from safetensors.torch import load_file, save_file

    save_file({"w": torch.randn(4, 4), "i": torch.arange(3)}, tmp_path / "m.safetensors")
    halve_safetensors(tmp_path)
    sd = load_file(tmp_path / "m.safetensors")
    assert sd["w"].dtype == torch.float16 and sd["i"].dtype == torch.int64
    save_file({"w": torch.full((2,), 1e6)}, tmp_path / "big.safetensors")
    with pytest.raises(ValueError, match="float16 range"):
        halve_safetensors(tmp_path)


def test_shard_safetensors_splits_big_files_and_from_pretrained_loads_them(tmp_path):
    from diffusers import WanTransformer3DModel
    from safetensors.torch import load_file

    from surf_video.mini.loading import _has_weights

    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=4,
                                  out_channels=4, text_dim=16, freq_dim=16, ffn_dim=64, num_layers=3)
    model.save_pretrained(tmp_path / "t")
    whole = load_file(tmp_path / "t" / "diffusion_pytorch_model.safetensors")
    size_mb = (tmp_path / "t" / "diffusion_pytorch_model.safetensors").stat().st_size / 1e6
    shards = shard_safetensors(tmp_path, max_shard_mb=size_mb / 2.5)
    assert len(shards) >= 3 and all(f.stat().st_size <= size_mb / 2.5 * 1e6 for f in shards)
    assert not (tmp_path / "t" / "diffusion_pytorch_model.safetensors").exists()
    index = json.loads((tmp_path / "t" / "diffusion_pytorch_model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(whole) and set(index["weight_map"].values()) == {f.name for f in shards}
    loaded = WanTransformer3DModel.from_pretrained(tmp_path / "t").state_dict()
    assert all(torch.equal(loaded[k], whole[k]) for k in whole)
    assert _has_weights(tmp_path / "t", "diffusion_pytorch_model")
    shards[-1].write_bytes(b"version https://git-lfs.github.com/spec/v1")  # an LFS pointer: weights missing
    assert not _has_weights(tmp_path / "t", "diffusion_pytorch_model")
    assert shard_safetensors(tmp_path, max_shard_mb=size_mb / 2.5) == []  # already sharded: left alone


def test_shard_safetensors_leaves_small_files_and_rejects_bad_arguments(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.randn(64, 64)}, tmp_path / "m.safetensors")
    assert shard_safetensors(tmp_path) == [] and (tmp_path / "m.safetensors").is_file()
    with pytest.raises(ValueError, match="max_shard_mb"):
        shard_safetensors(tmp_path, max_shard_mb=0)
    with pytest.raises(ValueError, match="smaller than the tensor w"):
        shard_safetensors(tmp_path, max_shard_mb=0.001)
    assert (tmp_path / "m.safetensors").is_file()  # nothing lost
    with pytest.raises(FileNotFoundError, match="folder"):
        shard_safetensors(tmp_path / "nope")


def test_cli_registers_mini_train_and_eval():
    from surf_video.cli.main import build_parser

    p = build_parser()
    a = p.parse_args(["mini", "train", "base", "--vae", "v", "--out", "o", "--max-minutes", "1.5"])
    assert a.part == "base" and a.max_minutes == 1.5 and a.vae == "v"
    a = p.parse_args(["mini", "eval", "--prompts", "3"])
    assert a.prompts == 3 and a.size == 128 and a.vsr == 0
    # one guidance default for SURF-Mini (chosen on development prompts): the evaluation, `surf generate`, the trainer
    from surf_video.api import defaults_for
    from surf_video.mini.config import GUIDANCE_SCALE
    from surf_video.mini.train_base import generate_eval

    assert a.guidance == GUIDANCE_SCALE == defaults_for("surf-mini")["guidance_scale"] == 3.0
    assert inspect.signature(generate_eval).parameters["guidance"].default == GUIDANCE_SCALE
    assert p.parse_args(["mini", "eval", "--vsr", "4"]).vsr == 4
    with pytest.raises(SystemExit):
        p.parse_args(["mini", "train", "unet", "--out", "o"])


def test_cli_train_base_without_vae_is_a_clear_error(capsys):
    from surf_video.cli.main import main

    assert main(["mini", "train", "base", "--out", "o"]) == 2
    assert "--vae is required" in capsys.readouterr().err


def test_cli_eval_vsr_rejects_a_negative_count(capsys):
    from surf_video.cli.main import main

    assert main(["mini", "eval", "--vsr", "-1"]) == 2
    assert "--vsr must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("argv, msg", [(["--prompt-offset", "-1"], "--prompt-offset must be >= 0"),
                                       (["--flow-shift", "0"], "--flow-shift must be > 0")])  # fmt: skip
def test_cli_eval_rejects_bad_prompt_offset_and_flow_shift(capsys, argv, msg):
    from surf_video.cli.main import main

    assert main(["mini", "eval", *argv]) == 2
    assert msg in capsys.readouterr().err


def test_eval_captions_offset_gives_a_disjoint_development_set():
    from surf_video.mini.data import eval_captions

    test, dev = eval_captions(5), eval_captions(5, offset=1000)
    assert test == eval_captions(5) and eval_captions(3, offset=2) == test[2:5]
    assert len(dev) == 5 and dev != test
    with pytest.raises(ValueError, match="offset must be >= 0"):
        eval_captions(1, offset=-1)


def test_wallclock_decay_is_flat_then_linear_to_five_percent():
    from surf_video.mini.recipe import wallclock_decay

    assert wallclock_decay(50, 100, 0.0) == 1.0 and wallclock_decay(100, 100, 0.0) == 1.0
    assert wallclock_decay(60, 100, 0.4) == 1.0  # the cool-down starts at 60 % of the budget
    assert wallclock_decay(80, 100, 0.4) == pytest.approx(0.5)
    assert wallclock_decay(100, 100, 0.4) == 0.05 and wallclock_decay(130, 100, 0.4) == 0.05
    for kind in ("base", "refiner", "vae"):
        assert load_recipe(kind, lr_decay_frac=0.3).lr_decay_frac == 0.3


def test_recipe_override_of_unknown_field_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown vae recipe fields.*image_fraction"):
        load_recipe("vae", learning_rate=1.0)


def test_cli_set_parses_yaml_values_and_rejects_bad_items():
    from surf_video.cli.mini import _parse_sets

    assert _parse_sets(["lr=2e-4", "frames=9", "data_cache=/tmp/x"]) == {"lr": 2e-4, "frames": 9, "data_cache": "/tmp/x"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        _parse_sets(["lr"])


def test_render_clips_cached_round_trip(tmp_path):
    from surf_video.mini.data import render_clips, render_clips_cached

    caps, vids = render_clips_cached(range(3, 5), (32,), tmp_path, workers=1, progress=False)
    again_caps, again = render_clips_cached(range(3, 5), (32,), tmp_path, workers=1, progress=False)
    ref_caps, ref = render_clips(range(3, 5), (32,), workers=1, progress=False)
    assert caps == again_caps == ref_caps
    assert np.array_equal(np.asarray(again[32]), ref[32]) and np.array_equal(vids[32], ref[32])
    assert len(list(tmp_path.glob("*.npy"))) == 1 and not list(tmp_path.glob("*tmp*"))


def test_train_vae_mixes_image_and_clip_steps_and_scores_reconstructions(tmp_path, capsys):
    from surf_video.mini.train_vae import train_vae

    r = load_recipe("vae", num_clips=2, num_clips_hr=1, batch_size=1, image_batch_size=2, image_fraction=0.5,
                    max_steps=8, max_minutes=5, crop=32, frames=5, log_every=2, data_cache=str(tmp_path / "cache"))  # fmt: skip
    m = train_vae(r, tmp_path / "vae", device="cpu")
    assert m["steps"] == 8 and 0 < m["image_steps"] < 8  # seeded: both kinds of step ran
    ev = m["evaluator_on_reconstructions"]
    assert ev["n"] == 4 and set(ev) == {"n", "all_correct", "color", "count", "shape", "motion"}
    assert (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").exists()
    assert "images" in capsys.readouterr().out
    with pytest.raises(ValueError, match="image_fraction"):
        train_vae(load_recipe("vae", image_fraction=1.5), tmp_path / "bad", device="cpu")


def test_vae_overfit_probe_reports_both_psnrs(capsys):
    from surf_video.mini.vae_probe import main, overfit

    r = overfit(steps=2, lr=1e-4, size=32, threads=1)
    assert r["steps"] == 2 and r["lr"] == 1e-4
    assert 0 < r["psnr_decode_zeros"] < 60 and 0 < r["psnr_decode_mu"] < 60
    assert main(["overfit", "1", "1e-4"]) == 0
    assert json.loads(capsys.readouterr().out)["mse_weight"] == 0.05
    assert main(["overfit", "1", "--mse-weight", "1", "1e-4"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["mse_weight"] == 1.0 and r["lr"] == 1e-4


@pytest.mark.slow  # ~2.5 min on 2 cores (train_vae's final held-out and evaluator metrics); run with -m slow
def test_train_vae_decoder_only_keeps_the_encoder_and_latent_space(tmp_path):
    # train_encoder=False: the encoder (and its latent statistics) stay bit-identical, the decoder changes, so a
    # base trained on the resumed VAE's latents stays valid
    from safetensors.torch import load_file

    from surf_video.mini.train_vae import train_vae

    kw = dict(num_clips=2, num_clips_hr=1, batch_size=1, max_minutes=5, crop=32, frames=5,
              data_cache=str(tmp_path / "cache"))
    from surf_video.mini.build import build_vae

    vae = build_vae()
    vae.register_to_config(latents_mean=[0.1] * 16, latents_std=[2.0] * 16)
    vae.save_pretrained(tmp_path / "a")
    with pytest.raises(ValueError, match="--resume"):
        train_vae(load_recipe("vae", max_steps=1, train_encoder=False, **kw), tmp_path / "x", device="cpu")
    m = train_vae(load_recipe("vae", max_steps=3, train_encoder=False, **kw), tmp_path / "b", resume=tmp_path / "a",
                  device="cpu")
    a = load_file(tmp_path / "a" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "b" / "diffusion_pytorch_model.safetensors")
    frozen = [k for k in a if k.startswith(("encoder.", "quant_conv."))]
    assert frozen and all(torch.equal(a[k], b[k]) for k in frozen)
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("decoder."))
    cfg_a = json.loads((tmp_path / "a" / "config.json").read_text())
    assert m["latents_mean"] == cfg_a["latents_mean"] and m["latents_std"] == cfg_a["latents_std"]


def test_deepen_transformer_computes_the_same_function_and_trains_the_new_blocks():
    from surf_video.mini.build import build_transformer, deepen_transformer

    torch.manual_seed(0)
    small = build_transformer(TransformerConfig(num_attention_heads=2, attention_head_dim=8, num_layers=3, ffn_dim=32,
                                                freq_dim=16), z_dim=4, text_dim=8).eval()  # fmt: skip
    grown = deepen_transformer(small, 7).eval()
    assert grown.config.num_layers == 7 and len(grown.blocks) == 7
    x, t, emb = torch.randn(2, 4, 2, 4, 4), torch.tensor([100.0, 900.0]), torch.randn(2, 5, 8)
    with torch.no_grad():
        a = small(hidden_states=x, timestep=t, encoder_hidden_states=emb, return_dict=False)[0]
        b = grown(hidden_states=x, timestep=t, encoder_hidden_states=emb, return_dict=False)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # the old blocks are spread out in order (slots round(i * 7 / 3) = 0, 2, 5) and the new ones can learn
    torch.testing.assert_close(grown.blocks[5].attn1.to_q.weight, small.blocks[2].attn1.to_q.weight)
    loss = grown(hidden_states=x, timestep=t, encoder_hidden_states=emb, return_dict=False)[0].square().mean()
    loss.backward()
    assert grown.blocks[1].ffn.net[2].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="num_layers must be >= the current depth 3"):
        deepen_transformer(small, 2)


def test_deepen_transformer_keeps_each_parameters_dtype():
    from surf_video.mini.build import build_transformer, deepen_transformer

    small = build_transformer(TransformerConfig(num_attention_heads=2, attention_head_dim=8, num_layers=2, ffn_dim=32,
                                                freq_dim=16), z_dim=4, text_dim=8).to(torch.bfloat16)  # fmt: skip
    small.scale_shift_table.data = small.scale_shift_table.data.float()  # diffusers keeps some modules in fp32
    for b in small.blocks:
        b.scale_shift_table.data = b.scale_shift_table.data.float()
    grown = deepen_transformer(small, 4)
    dtypes = {n: p.dtype for n, p in grown.named_parameters()}
    assert dtypes["scale_shift_table"] == torch.float32 and dtypes["blocks.1.scale_shift_table"] == torch.float32
    assert dtypes["blocks.1.attn1.to_q.weight"] == torch.bfloat16 and dtypes["proj_out.weight"] == torch.bfloat16
