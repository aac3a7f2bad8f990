"""SURF-Mini building blocks: tokenizer, recipes, random-weight pipeline, fp16 export."""

import pytest
import torch

from surf_video.mini.build import build_pipeline, build_tokenizer, caption_words
from surf_video.mini.config import MAX_SEQUENCE_LENGTH, MiniConfig, TextEncoderConfig, TransformerConfig, VAEConfig
from surf_video.mini.export import halve_safetensors
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


def test_cli_registers_mini_train_and_eval():
    from surf_video.cli.main import build_parser

    p = build_parser()
    a = p.parse_args(["mini", "train", "base", "--vae", "v", "--out", "o", "--max-minutes", "1.5"])
    assert a.part == "base" and a.max_minutes == 1.5 and a.vae == "v"
    a = p.parse_args(["mini", "eval", "--prompts", "3"])
    assert a.prompts == 3 and a.size == 128
    with pytest.raises(SystemExit):
        p.parse_args(["mini", "train", "unet", "--out", "o"])


def test_cli_train_base_without_vae_is_a_clear_error(capsys):
    from surf_video.cli.main import main

    assert main(["mini", "train", "base", "--out", "o"]) == 2
    assert "--vae is required" in capsys.readouterr().err
