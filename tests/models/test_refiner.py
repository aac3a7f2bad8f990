"""RefinerTransformer3DModel: windowed attention vs a naive masked reference, Wan equivalence,
locality, save/load, configs and errors (CPU, fp32, tiny shapes)."""

import math
from pathlib import Path

import pytest
import torch
from diffusers import WanTransformer3DModel

from surf_video.models import RefinerTransformer3DModel, list_refiner_configs, load_refiner_config

TINY_WAN = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
    text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
)  # fmt: skip


def _refiner(window, num_layers=2, seed=0):
    torch.manual_seed(seed)
    return RefinerTransformer3DModel(**{**TINY_WAN, "num_layers": num_layers}, temporal_window_size=window).eval()


def _inputs(frames, h=4, w=6, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 16, frames, h, w, generator=g)
    t = torch.tensor([300.0, 700.0][:batch])
    text = torch.randn(batch, 5, 32, generator=g)
    return x, t, text


# ----------------------------------------------------------------------------- naive reference
def _reference_segments(num_frames, window, shifted):
    """Segment id and in-segment position per frame, from frame indices only."""
    s = window // 2 if shifted else 0
    seg = [math.floor((f - s) / window) for f in range(num_frames)]
    start = {k: min(f for f in range(num_frames) if seg[f] == k) for k in set(seg)}
    return torch.tensor(seg), torch.tensor([f - start[seg[f]] for f in range(num_frames)])


def _rotate(x, pos_t, pos_h, pos_w, head_dim):
    """Wan's 3D RoPE written out: interleaved pairs, axis dims (t, h, w), theta 10000."""
    hd = 2 * (head_dim // 6)
    dims = (head_dim - 2 * hd, hd, hd)
    angles = []
    for dim, pos in zip(dims, (pos_t, pos_h, pos_w)):
        freq = 1.0 / 10000 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        angles.append(pos.double()[:, None] * freq[None])
    ang = torch.cat(angles, dim=1)  # [N, head_dim / 2]
    cos, sin = ang.cos().float()[None, :, None], ang.sin().float()[None, :, None]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out


def _naive_window_attention(attn, hs, frames, pph, ppw, window, shifted):
    """Full attention over all tokens with an explicit block mask built from frame indices."""
    seg, pos = _reference_segments(frames, window, shifted)
    grid_f, grid_h, grid_w = torch.meshgrid(torch.arange(frames), torch.arange(pph), torch.arange(ppw), indexing="ij")
    tok_f, tok_h, tok_w = grid_f.flatten(), grid_h.flatten(), grid_w.flatten()
    heads = attn.heads
    q, k, v = attn.norm_q(attn.to_q(hs)), attn.norm_k(attn.to_k(hs)), attn.to_v(hs)
    q, k, v = (x.unflatten(2, (heads, -1)) for x in (q, k, v))
    d = q.shape[-1]
    q = _rotate(q, pos[tok_f], tok_h, tok_w, d)
    k = _rotate(k, pos[tok_f], tok_h, tok_w, d)
    mask = seg[tok_f][:, None] == seg[tok_f][None, :]
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    out = torch.einsum("bhqk,bkhd->bqhd", weights, v).flatten(2, 3)
    return attn.to_out[0](out)


WINDOW_CASES = [(f, w) for f in (5, 6, 7, 8) for w in (2, 3)] + [(5, 4), (7, 4), (9, 4), (3, 2)]


@pytest.mark.parametrize("mode", ["split", "mask"])
@pytest.mark.parametrize("frames,window", WINDOW_CASES)
def test_window_attention_matches_naive_reference(frames, window, mode):
    model = _refiner(window)
    model.set_boundary_mode(mode)
    pph, ppw = 2, 3
    plans = model.window_plans(frames, pph, ppw)
    assert len(plans) == 2
    attn = model.blocks[0].attn1
    hs = torch.randn(2, frames * pph * ppw, attn.inner_dim, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        for shifted, plan in ((False, plans[0]), (True, plans[1])):
            got = attn(hs, None, None, plan)
            ref = _naive_window_attention(attn, hs, frames, pph, ppw, window, shifted)
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
            # and it is not plain full attention (the test would notice a missing mask/window)
            full = _naive_window_attention(attn, hs, frames, pph, ppw, frames, False)
            assert (got - full).abs().max() > 1e-3


def test_masked_boundary_cases_are_covered():
    needs = [model_plan.layout.boundary_needs_mask
             for f, w in WINDOW_CASES for model_plan in _refiner(w).window_plans(f, 1, 1)[1:]]  # fmt: skip
    assert sum(needs) >= 4


def test_rope_positions_are_window_relative():
    model = _refiner(4)
    frames = 9
    t_dim = model.rope.t_dim
    for shifted, plan in zip((False, True), model.window_plans(frames, 1, 1)):
        _, pos = _reference_segments(frames, 4, shifted)
        torch.testing.assert_close(plan.freqs_cos[0, :, 0, :t_dim], model.rope.freqs_cos[pos, :t_dim])
        torch.testing.assert_close(plan.freqs_sin[0, :, 0, :t_dim], model.rope.freqs_sin[pos, :t_dim])


def test_more_frames_than_rope_table():
    # window-relative positions only need `window` rows: 40 latent frames with a 32-row table
    model = _refiner(4)
    x, t, text = _inputs(frames=40, h=2, w=2, batch=1)
    with torch.no_grad():
        assert model(x, t, text).sample.shape == x.shape
    with pytest.raises(ValueError, match="rope_max_seq_len"):
        _refiner(None)(x, t, text)


# ----------------------------------------------------------------------------- Wan equivalence
@pytest.mark.parametrize("window", [None, 3, 8])
def test_from_wan_full_window_equals_wan(window):
    torch.manual_seed(0)
    wan = WanTransformer3DModel(**TINY_WAN).eval()
    refiner = RefinerTransformer3DModel.from_wan(wan, temporal_window_size=window).eval()
    x, t, text = _inputs(frames=3)
    with torch.no_grad():
        ref = wan(x, t, text).sample
        out = refiner(x, t, text).sample
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    assert refiner.config.temporal_window_size == window
    # weights are copied, not shared
    assert refiner.proj_out.weight.data_ptr() != wan.proj_out.weight.data_ptr()
    # and a window smaller than the frames does change the result
    small = RefinerTransformer3DModel.from_wan(wan, temporal_window_size=1).eval()
    with torch.no_grad():
        assert (small(x, t, text).sample - ref).abs().max() > 1e-4


def test_state_dict_matches_wan_one_to_one():
    with torch.device("meta"):
        cfg = load_refiner_config("refiner-1b")
        wan = WanTransformer3DModel(**{k: v for k, v in cfg.items() if k != "temporal_window_size"})
        refiner = RefinerTransformer3DModel(**cfg)
    a = {k: v.shape for k, v in wan.state_dict().items()}
    b = {k: v.shape for k, v in refiner.state_dict().items()}
    assert a == b
    n = sum(v.numel() for v in refiner.parameters())
    assert 1.2e9 < n < 1.6e9  # Wan2.1-T2V-1.3B class


def test_from_wan_rejects_image_conditioned_wan():
    wan = WanTransformer3DModel(**TINY_WAN, image_dim=8, added_kv_proj_dim=24)
    with pytest.raises(ValueError, match="image_dim"):
        RefinerTransformer3DModel.from_wan(wan, temporal_window_size=2)


# ----------------------------------------------------------------------------- locality
def _changed_frames_all(model, frames):
    """Output frames changed by perturbing each input frame (one batched forward)."""
    x, t, text = _inputs(frames, batch=1)
    xs = x.repeat(frames + 1, 1, 1, 1, 1)
    for f in range(frames):
        xs[1 + f, :, f] += 1.0
    with torch.no_grad():
        out = model(xs, t.repeat(frames + 1), text.repeat(frames + 1, 1, 1)).sample
    per_frame = (out[1:] - out[:1]).abs().amax(dim=(1, 3, 4))  # [perturbed, output frame]
    assert per_frame.max() > 1e-3
    return [{g for g in range(frames) if per_frame[f, g] > 1e-6} for f in range(frames)]


@pytest.mark.parametrize("frames,window", [(7, 2), (8, 3), (9, 4)])
def test_one_block_stays_inside_window(frames, window):
    changed = _changed_frames_all(_refiner(window, num_layers=1), frames)
    for f in range(frames):
        start = (f // window) * window
        assert changed[f] == set(range(start, min(start + window, frames)))


@pytest.mark.parametrize("frames,window", [(7, 2), (8, 3), (9, 4), (10, 4)])
def test_two_blocks_spread_by_shifted_window(frames, window):
    all_changed = _changed_frames_all(_refiner(window, num_layers=2), frames)
    s = window // 2
    for f in range(frames):
        start = (f // window) * window
        own = set(range(start, min(start + window, frames)))
        # shifted segments touching the unshifted window; no wrap-around through the masked window
        seg = {g: math.floor((g - s) / window) for g in range(frames)}
        expected = {g for g in range(frames) if seg[g] in {seg[o] for o in own}}
        changed = all_changed[f]
        assert changed == expected
        assert changed > own or len(own) == frames  # it does spread
        assert min(changed) >= start - (window - s) and max(changed) < start + window + s
    # the wrap: frame 0 and the last frame never interact
    assert frames - 1 not in all_changed[0] and 0 not in all_changed[frames - 1]


# ----------------------------------------------------------------------------- save / load
def test_save_load_round_trip(tmp_path):
    model = _refiner(3)
    model.save_pretrained(tmp_path / "r")
    assert (tmp_path / "r" / "diffusion_pytorch_model.safetensors").exists()
    loaded = RefinerTransformer3DModel.from_pretrained(tmp_path / "r").eval()
    assert loaded.config.temporal_window_size == 3
    x, t, text = _inputs(frames=7)
    with torch.no_grad():
        assert torch.equal(loaded(x, t, text).sample, model(x, t, text).sample)


def test_wan_checkpoint_folder_loads_as_refiner(tmp_path):
    # a diffusers Wan transformer folder (e.g. Wan2.1-T2V-1.3B-Diffusers/transformer) loads directly
    torch.manual_seed(0)
    wan = WanTransformer3DModel(**TINY_WAN).eval()
    wan.save_pretrained(tmp_path / "transformer")
    refiner = RefinerTransformer3DModel.from_pretrained(tmp_path, subfolder="transformer", temporal_window_size=8)
    assert refiner.config.temporal_window_size == 8
    x, t, text = _inputs(frames=3)
    with torch.no_grad():
        torch.testing.assert_close(refiner.eval()(x, t, text).sample, wan(x, t, text).sample, atol=1e-5, rtol=1e-5)


def test_load_rejects_bin_only_and_missing(tmp_path):
    model = _refiner(3)
    model.save_pretrained(tmp_path / "bin", safe_serialization=False)
    assert not list((tmp_path / "bin").glob("*.safetensors"))
    with pytest.raises(FileNotFoundError, match="safetensors"):
        RefinerTransformer3DModel.from_pretrained(tmp_path / "bin")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RefinerTransformer3DModel.from_pretrained(tmp_path / "nope")
    with pytest.raises(ValueError, match="safetensors"):
        RefinerTransformer3DModel.from_pretrained(tmp_path / "bin", use_safetensors=False)


def test_interrupted_save_leaves_nothing_half_written(tmp_path, monkeypatch):
    from diffusers.models.modeling_utils import ModelMixin

    model = _refiner(3)

    def broken(self, save_directory, **kw):
        (Path(save_directory) / "diffusion_pytorch_model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ModelMixin, "save_pretrained", broken)
    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists() or not list((tmp_path / "ckpt").iterdir())
    assert [p.name for p in tmp_path.iterdir() if p.name != "ckpt"] == []  # temp folder cleaned up


# ----------------------------------------------------------------------------- configs, errors, training
def test_shipped_configs():
    assert {"refiner-1b", "refiner-tiny", "refiner-paper-1b"} <= set(list_refiner_configs())
    cfg = load_refiner_config("refiner-1b")
    assert cfg["num_attention_heads"] * cfg["attention_head_dim"] == 1536
    assert (cfg["num_layers"], cfg["ffn_dim"], cfg["temporal_window_size"]) == (30, 8960, 7)
    assert not any(k.startswith("_") for k in cfg)
    paper = load_refiner_config("refiner-paper-1b")
    assert paper["num_attention_heads"] * paper["attention_head_dim"] == 1024 and paper["num_layers"] == 40
    tiny = RefinerTransformer3DModel.from_config_name("refiner-tiny", temporal_window_size=3)
    assert tiny.config.temporal_window_size == 3
    x = torch.randn(1, tiny.config.in_channels, 5, 4, 4)
    out = tiny(x, torch.tensor([500.0]), torch.randn(1, 3, tiny.config.text_dim)).sample
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="unknown refiner config"):
        load_refiner_config("refiner-huge")


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_bad_window_size_raises(bad):
    with pytest.raises(ValueError, match="temporal_window_size"):
        RefinerTransformer3DModel(**TINY_WAN, temporal_window_size=bad)


def test_bad_boundary_mode_and_shape():
    model = _refiner(2)
    with pytest.raises(ValueError, match="mode"):
        model.set_boundary_mode("pad")
    x, t, text = _inputs(frames=3, h=5)
    with pytest.raises(ValueError, match="patch_size"):
        model(x, t, text)


def test_gradient_checkpointing_same_gradients():
    model = _refiner(2).train()
    x, t, text = _inputs(frames=4, h=2, w=4, batch=1)  # shifted block has a [tail | head] boundary

    def grads():
        model.zero_grad()
        model(x, t, text).sample.square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.enable_gradient_checkpointing()
    assert model.gradient_checkpointing
    ckpt = grads()
    for a, b in zip(plain, ckpt):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_set_attention_backend_reaches_window_processor():
    model = _refiner(2)
    x, t, text = _inputs(frames=5)
    with torch.no_grad():
        before = model(x, t, text).sample
        model.set_attention_backend("native")
        assert all(b.attn1.processor._attention_backend == "native" for b in model.blocks)
        torch.testing.assert_close(model(x, t, text).sample, before, atol=1e-6, rtol=1e-6)
    model.reset_attention_backend()


def test_rotary_saves_float32_tables_whatever_their_dtype():
    """FSDP2 casts block inputs (the RoPE tables) to bf16 in the forward but not when activation
    checkpointing recomputes the block; the tensors saved for backward must not depend on that cast
    (a CheckpointError on 2 GPUs otherwise)."""
    from surf_video.models.refiner import _apply_rotary

    x = torch.randn(1, 6, 2, 8, dtype=torch.bfloat16, requires_grad=True)
    cos, sin = torch.randn(1, 6, 1, 8), torch.randn(1, 6, 1, 8)

    def saved_table_dtypes(c, s):
        dtypes = []

        def pack(t):
            if t.shape[-1] == 4 and t.shape[-2] == 1:  # the sliced tables [1, N, 1, head_dim / 2]
                dtypes.append(t.dtype)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            _apply_rotary(x, c, s).float().sum().backward()
        return dtypes

    as_fp32 = saved_table_dtypes(cos, sin)
    as_bf16 = saved_table_dtypes(cos.bfloat16(), sin.bfloat16())
    assert as_fp32 and as_fp32 == as_bf16 and set(as_fp32) == {torch.float32}
