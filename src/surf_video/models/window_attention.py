"""Temporal-window self-attention of the SURF Refiner (the part of its blocks that differs from Wan's).

:class:`WindowPlan` is what a block needs to attend in windows; :class:`RefinerWindowAttnProcessor` replaces
``WanAttnProcessor`` in every block's self-attention (Ulysses context parallelism included);
:func:`windowed_attention` partitions, attends with diffusers' dispatch and merges. The window partition itself
is pure tensor code in :mod:`surf_video.core.window`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor, _get_qkv_projections

from ..core.window import WindowLayout, window_merge, window_partition
from .ulysses import heads_to_seq, seq_to_heads, ulysses_group

__all__ = ["WindowPlan", "RefinerWindowAttnProcessor", "windowed_attention"]


@dataclass
class WindowPlan:
    """What one self-attention block needs to attend in temporal windows (built once per forward).

    Passed to the blocks in place of Wan's ``rotary_emb`` tuple; it is deliberately not iterable,
    so a plain :class:`WanAttnProcessor` fails loudly instead of silently attending globally.

    Attributes:
        layout: Window layout over the post-patch frames.
        tokens_per_frame: Tokens per latent frame after patching (``H' * W'``).
        freqs_cos: ``[1, F' * H' * W', 1, head_dim]`` RoPE cosines with window-relative frames.
        freqs_sin: Same shape, sines.
        mask: ``[1, 1, L, L]`` bool mask of the boundary window, or ``None`` (no mask needed, or
            ``boundary_mode == "split"``).
        boundary_mode: ``"split"``: the boundary window's two segments run as two unmasked
            calls; ``"mask"``: one masked call (the paper's form). Both compute the same result.
    """

    layout: WindowLayout
    tokens_per_frame: int
    freqs_cos: torch.Tensor
    freqs_sin: torch.Tensor
    mask: torch.Tensor | None = None
    boundary_mode: str = "split"


def _apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # Same arithmetic as WanAttnProcessor's rotary (interleaved pairs), so full windows match Wan.
    # float32 tables whatever they arrive as: FSDP2 casts block inputs (this plan's tables) to bf16 in the
    # forward but not when activation checkpointing recomputes the block, and the recomputed tensors must
    # match the saved ones (a CheckpointError on 2 GPUs with bf16 FSDP + gradient checkpointing otherwise).
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2].float(), sin[..., 1::2].float()
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


class RefinerWindowAttnProcessor(WanAttnProcessor):
    """Self-attention processor for temporal windows; falls back to Wan's when given a RoPE tuple.

    Full windows are one batched :func:`dispatch_attention_fn` call of ``B * M`` sequences with no
    mask, so flash / cuDNN backends apply. ``_attention_backend`` follows ``set_attention_backend``.
    Under context parallelism (``enable_parallelism`` sets ``_parallel_config``) this rank holds
    ``N / P`` tokens: Ulysses all-to-alls trade them for ``H / P`` heads of the full sequence, so the
    whole-sequence RoPE / window plan applies unchanged (its tables broadcast over heads), and trade
    back after attention. Ring attention is not implemented here (``NotImplementedError``).
    """

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self,
        attn: WanAttention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: WindowPlan | tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Attend ``hidden_states [B, N, dim]`` (``N = F' * H' * W'`` frame-major) -> ``[B, N, dim]``."""
        cp = self._parallel_config is not None and self._parallel_config.context_parallel_config is not None
        if not isinstance(rotary_emb, WindowPlan) and not (cp and encoder_hidden_states is None):
            if rotary_emb is not None:  # float32 tables, as in _apply_rotary (FSDP2 + checkpointing)
                rotary_emb = tuple(t.float() for t in rotary_emb)
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("windowed self-attention takes no encoder_hidden_states or attention_mask")
        return self._attend_windows(attn, hidden_states, rotary_emb, cp)

    def _attend_windows(self, attn, hidden_states, plan, cp: bool):
        query, key, value = _get_qkv_projections(attn, hidden_states, None)
        # RMSNorm across all heads: before the head split, where each token still has every head.
        query, key = attn.norm_q(query), attn.norm_k(key)
        query, key, value = (x.unflatten(2, (attn.heads, -1)) for x in (query, key, value))
        if cp:
            group, degree = ulysses_group(self._parallel_config)
            query, key, value = (seq_to_heads(x, group, degree) for x in (query, key, value))
        if isinstance(plan, WindowPlan):
            cos, sin = plan.freqs_cos, plan.freqs_sin
        else:  # full attention (one window covers every frame) under context parallelism
            cos, sin = plan
        query, key = _apply_rotary(query, cos, sin), _apply_rotary(key, cos, sin)
        if isinstance(plan, WindowPlan):
            out = windowed_attention(query, key, value, plan, backend=self._attention_backend)
        else:
            out = _attend(query, key, value, None, self._attention_backend)
        if cp:
            out = heads_to_seq(out, group, degree)
        out = out.flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


def _attend(q, k, v, mask, backend):
    return dispatch_attention_fn(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False, backend=backend)


def windowed_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, plan: WindowPlan, backend=None
) -> torch.Tensor:
    """Temporal-window attention on RoPE'd ``[B, N, heads, head_dim]`` tensors (frame-major tokens).

    Args:
        query: ``[B, N, heads, head_dim]`` with ``N = F' * tokens_per_frame``, RoPE already applied.
        key: Same shape.
        value: Same shape.
        plan: The block's :class:`WindowPlan`.
        backend: diffusers attention backend (``None`` = the active one).

    Returns:
        ``[B, N, heads, head_dim]``.
    """
    lay, hw = plan.layout, plan.tokens_per_frame
    b, n, h, d = query.shape
    (qf, qb), (kf, kb), (vf, vb) = (
        window_partition(x.reshape(b, lay.num_frames, hw, h, d), lay.window, lay.shift) for x in (query, key, value)
    )
    out_full = out_bnd = None
    if qf is not None:
        seq = (qf.shape[0], lay.window * hw, h, d)
        out_full = _attend(qf.reshape(seq), kf.reshape(seq), vf.reshape(seq), None, backend)
        out_full = out_full.reshape(qf.shape)
    if qb is not None:
        qb, kb, vb = (x.flatten(1, 2) for x in (qb, kb, vb))
        if lay.boundary_needs_mask and plan.boundary_mode == "split":
            # [tail, head] are unrelated: two unmasked calls equal the masked one, and keep
            # mask-free kernels usable.
            cut = lay.tail * hw
            out_bnd = torch.cat(
                [_attend(qb[:, :cut], kb[:, :cut], vb[:, :cut], None, backend),
                 _attend(qb[:, cut:], kb[:, cut:], vb[:, cut:], None, backend)], dim=1,
            )  # fmt: skip
        else:
            out_bnd = _attend(qb, kb, vb, plan.mask if lay.boundary_needs_mask else None, backend)
        out_bnd = out_bnd.unflatten(1, (lay.boundary_frames, hw))
    out = window_merge(out_full, out_bnd, lay.num_frames, lay.window, lay.shift)
    return out.reshape(b, n, h, d)
