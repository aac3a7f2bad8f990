"""Analytic FLOP counts of one transformer forward for the architectures the speed benchmark times.

A multiply-add counts as 2 FLOPs (the convention of ``torch.utils.flop_counter``). Counted: every
matmul (linear layers, the patch-embedding convolution) and attention's ``Q K^T`` and ``P V``
(``4 * s_q * s_k * heads * head_dim`` per sequence). Not counted: norms, activations, softmax, RoPE,
elementwise modulation (a few % of the time at most, and no tensor-core work).
``tests/bench/test_speed.py`` checks these formulas against ``FlopCounterMode`` on small models.

Shapes: ``tokens`` is ``F' * H' * W'`` after patching; ``text_len`` is the padded text length the
transformer sees (512 for Wan's umT5, 256 for HunyuanVideo's LLaMA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..core.window import window_layout

__all__ = [
    "PatchGrid",
    "patch_grid",
    "attention_pairs",
    "wan_forward_flops",
    "refiner_forward_flops",
    "hunyuan_forward_flops",
]


@dataclass(frozen=True)
class PatchGrid:
    """The token grid of one video after the VAE and the patch embedding.

    Attributes:
        frames: ``F'`` latent frames after temporal patching.
        height: ``H'`` tokens along the height.
        width: ``W'`` tokens along the width.
    """

    frames: int
    height: int
    width: int

    @property
    def tokens(self) -> int:
        return self.frames * self.height * self.width

    @property
    def tokens_per_frame(self) -> int:
        return self.height * self.width


def patch_grid(num_frames: int, height: int, width: int, patch=(1, 2, 2), vae_temporal: int = 4,
               vae_spatial: int = 8) -> PatchGrid:
    """Token grid of a ``num_frames x height x width`` pixel video (e.g. 81x720x1280 -> 21x45x80).

    Raises:
        ValueError: If the sizes do not divide (the pipelines reject such sizes too).
    """
    if (num_frames - 1) % vae_temporal:
        raise ValueError(f"num_frames must be {vae_temporal}n+1, got {num_frames}")
    lf = (num_frames - 1) // vae_temporal + 1
    pt, ph, pw = patch
    if height % (vae_spatial * ph) or width % (vae_spatial * pw) or lf % pt:
        raise ValueError(f"{num_frames}x{height}x{width} does not divide by the VAE factors and patch {patch}")
    return PatchGrid(lf // pt, height // (vae_spatial * ph), width // (vae_spatial * pw))


def attention_pairs(grid: PatchGrid, window: int | None, shifted: bool, boundary_mode: str = "split") -> int:
    """Sum over attention calls of ``s_q * s_k`` for one self-attention layer (one sample).

    Args:
        grid: the token grid.
        window: temporal window in patched frames, or ``None`` / ``>= frames`` for full attention.
        shifted: the block's windows are shifted by ``window // 2`` (odd refiner blocks).
        boundary_mode: ``'split'`` (the shifted boundary window's two segments attend apart, as
            :class:`~surf_video.models.refiner.RefinerTransformer3DModel` does by default) or ``'mask'``
            (one masked call: the masked-out pairs are still computed).
    """
    hw, f = grid.tokens_per_frame, grid.frames
    if window is None or window >= f:
        return (f * hw) ** 2
    lay = window_layout(f, window, window // 2 if shifted else 0)
    pairs = lay.num_full * (window * hw) ** 2
    if lay.boundary_needs_mask and boundary_mode == "split":
        pairs += (lay.tail * hw) ** 2 + (lay.shift * hw) ** 2
    elif lay.boundary_frames:
        pairs += (lay.boundary_frames * hw) ** 2
    return pairs


def _linear(n: int, d_in: int, d_out: int) -> int:
    return 2 * n * d_in * d_out


def _wan_like(cfg: Mapping, grid: PatchGrid, text_len: int, self_attn_pairs: list[int]) -> dict[str, int]:
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    n, ffn, c_in, c_out = grid.tokens, cfg["ffn_dim"], cfg["in_channels"], cfg.get("out_channels") or cfg["in_channels"]
    p = 1
    for v in cfg["patch_size"]:
        p *= int(v)
    layers = cfg["num_layers"]
    out = {
        "embed": _linear(n, c_in * p, d) + _linear(text_len, cfg["text_dim"], d) + _linear(text_len, d, d)
        + _linear(1, cfg["freq_dim"], d) + _linear(1, d, d) + _linear(1, d, 6 * d),
        "self_attn_proj": layers * 4 * _linear(n, d, d),
        "self_attn_sdpa": 4 * d * sum(self_attn_pairs),
        "cross_attn_proj": layers * (2 * _linear(n, d, d) + 2 * _linear(text_len, d, d)),
        "cross_attn_sdpa": layers * 4 * n * text_len * d,
        "ffn": layers * (_linear(n, d, ffn) + _linear(n, ffn, d)),
        "head": _linear(n, d, c_out * p),
    }
    out["total"] = sum(out.values())
    return out


def wan_forward_flops(cfg: Mapping, grid: PatchGrid, text_len: int = 512, batch: int = 1) -> dict[str, int]:
    """FLOPs of one ``WanTransformer3DModel`` forward (text-to-video), by component and ``'total'``.

    Args:
        cfg: the transformer config (``num_attention_heads``, ``attention_head_dim``, ``ffn_dim``,
            ``num_layers``, ``in_channels``, ``out_channels``, ``patch_size``, ``text_dim``, ``freq_dim``).
        grid: the token grid (:func:`patch_grid`).
        text_len: padded text length (512 for Wan 2.1).
        batch: samples in the forward (CFG as two separate forwards: call twice or multiply).
    """
    pairs = [attention_pairs(grid, None, False)] * cfg["num_layers"]
    return {k: batch * v for k, v in _wan_like(cfg, grid, text_len, pairs).items()}


def refiner_forward_flops(cfg: Mapping, grid: PatchGrid, text_len: int = 512, batch: int = 1,
                          boundary_mode: str = "split") -> dict[str, int]:
    """FLOPs of one ``RefinerTransformer3DModel`` forward: Wan's, with windowed self-attention.

    Block ``i`` attends in windows of ``temporal_window_size // p_t`` patched frames, shifted by half a window
    in odd blocks; ``temporal_window_size=None`` is full attention (exactly Wan's count).
    """
    size = cfg.get("temporal_window_size")
    win = None if size is None else int(size) // int(cfg["patch_size"][0])
    pairs = [attention_pairs(grid, win, bool(i % 2), boundary_mode) for i in range(cfg["num_layers"])]
    return {k: batch * v for k, v in _wan_like(cfg, grid, text_len, pairs).items()}


def hunyuan_forward_flops(cfg: Mapping, grid: PatchGrid, text_len: int = 256, batch: int = 1) -> dict[str, int]:
    """FLOPs of one ``HunyuanVideoTransformer3DModel`` forward (embedded guidance: one forward per step).

    Dual-stream blocks attend jointly over video and text tokens; single-stream blocks run on the
    concatenation; the token refiner runs on the text alone. The attention mask of padded text does
    not skip work in SDPA, so all ``tokens + text_len`` positions are counted.
    """
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    n, l = grid.tokens, text_len
    s = n + l
    p = cfg["patch_size"] * cfg["patch_size"] * cfg["patch_size_t"]
    mlp = int(d * cfg["mlp_ratio"])
    c_in, c_out = cfg["in_channels"], cfg.get("out_channels") or cfg["in_channels"]
    dual, single, ref = cfg["num_layers"], cfg["num_single_layers"], cfg["num_refiner_layers"]
    text_dim, pooled = cfg["text_embed_dim"], cfg["pooled_projection_dim"]
    temb = 2 * (_linear(1, 256, d) + _linear(1, d, d))  # timestep and guidance embedders
    out = {
        "embed": _linear(n, c_in * p, d) + temb + _linear(1, pooled, d) + _linear(1, d, d),
        # token refiner: proj_in, its own timestep/pooled-text embedding, self-attention + FFN on the text
        "text_refiner": _linear(l, text_dim, d) + _linear(1, 256, d) + _linear(1, d, d) + _linear(1, text_dim, d)
        + _linear(1, d, d) + ref * (4 * _linear(l, d, d) + 4 * l * l * d + _linear(l, d, mlp) + _linear(l, mlp, d)
                                    + _linear(1, d, 2 * d)),
        "dual_proj": dual * (4 * _linear(s, d, d) + _linear(1, d, 6 * d) * 2),
        "dual_sdpa": dual * 4 * s * s * d,
        "dual_ffn": dual * (_linear(s, d, mlp) + _linear(s, mlp, d)),
        "single_proj": single * (3 * _linear(s, d, d) + _linear(s, d, mlp) + _linear(s, d + mlp, d) + _linear(1, d, 3 * d)),
        "single_sdpa": single * 4 * s * s * d,
        "head": _linear(1, d, 2 * d) + _linear(n, d, c_out * p),
    }
    out["total"] = sum(out.values())
    return {k: batch * v for k, v in out.items()}
