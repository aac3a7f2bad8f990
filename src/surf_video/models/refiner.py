"""SURF Refiner: a Wan-style DiT whose self-attention is shifted temporal-window attention.

The blocks are diffusers' own :class:`WanTransformerBlock` (AdaLN timestep modulation,
self-attention, text cross-attention, FFN); only the self-attention processor differs. Even
blocks attend within non-overlapping windows of ``temporal_window_size`` latent frames spanning
the full height and width; odd blocks shift the windows by half a window and mask the wrapped
boundary window (paper eq. 3, see :mod:`surf_video.core.window`). Parameter names and shapes are
those of :class:`WanTransformer3DModel`, so Wan checkpoints load 1:1 (:meth:`from_wan`), and a
window covering every latent frame makes the model compute exactly what Wan computes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import (
    WanRotaryPosEmbed,
    WanTimeTextImageEmbedding,
    WanTransformer3DModel,
    WanTransformerBlock,
)

try:  # diffusers >= 0.36 scales LoRA layers from attention_kwargs["scale"]
    from diffusers.utils import apply_lora_scale
except ImportError:  # pragma: no cover

    def apply_lora_scale(_name):
        return lambda fn: fn


from ..core.window import (
    boundary_window_mask,
    window_layout,
    window_positions,
)
from .configs import load_refiner_config
from .window_attention import RefinerWindowAttnProcessor, WindowPlan, _apply_rotary, windowed_attention  # noqa: F401

__all__ = [
    "RefinerTransformer3DModel",
    "RefinerWindowAttnProcessor",
    "RefinerTransformerBlock",
    "WindowPlan",
    "BOUNDARY_MODES",
    "windowed_attention",
]

BOUNDARY_MODES = ("split", "mask")
# Config keys shared with WanTransformer3DModel (copied by from_wan).
_WAN_KEYS = (
    "patch_size", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "text_dim",
    "freq_dim", "ffn_dim", "num_layers", "cross_attn_norm", "qk_norm", "eps", "rope_max_seq_len",
)  # fmt: skip


class RefinerTransformerBlock(WanTransformerBlock):
    """A :class:`WanTransformerBlock` whose self-attention uses :class:`RefinerWindowAttnProcessor`.

    Its ``forward(hidden_states, encoder_hidden_states, temb, rotary_emb)`` is Wan's; ``rotary_emb``
    is a :class:`WindowPlan` for windowed blocks or Wan's ``(cos, sin)`` tuple for full attention.
    """

    def __init__(self, dim, ffn_dim, num_heads, qk_norm="rms_norm_across_heads", cross_attn_norm=False, eps=1e-6):
        super().__init__(dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps, added_kv_proj_dim=None)
        self.attn1.set_processor(RefinerWindowAttnProcessor())


class RefinerTransformer3DModel(ModelMixin, ConfigMixin, PeftAdapterMixin, AttentionMixin):
    """SURF Refiner transformer: Wan 2.1 DiT with shifted temporal-window self-attention.

    Args:
        patch_size: ``(p_t, p_h, p_w)`` 3D patch size.
        num_attention_heads: Attention heads.
        attention_head_dim: Channels per head (hidden size = heads * head_dim).
        in_channels: Latent channels in.
        out_channels: Latent channels out.
        text_dim: Text-encoder embedding size (4096 for umT5-XXL).
        freq_dim: Sinusoidal timestep embedding size.
        ffn_dim: FFN inner size.
        num_layers: Transformer blocks (even ones regular windows, odd ones shifted).
        cross_attn_norm: LayerNorm before cross-attention.
        qk_norm: Kept for Wan config parity (Wan always uses RMSNorm across heads).
        eps: Norm epsilon.
        rope_max_seq_len: Rows of the RoPE tables; bounds the window and the patched height/width.
        temporal_window_size: Window in latent frames (multiple of ``p_t``); ``None`` or a value
            ``>=`` the latent frames means full attention in every block (exactly Wan).
    """

    _supports_gradient_checkpointing = True
    _skip_layerwise_casting_patterns = ["patch_embedding", "condition_embedder", "norm"]
    _no_split_modules = ["RefinerTransformerBlock"]
    _keep_in_fp32_modules = ["rope", "time_embedder", "scale_shift_table", "norm1", "norm2", "norm3"]
    _keys_to_ignore_on_load_unexpected = ["norm_added_q"]
    _repeated_blocks = ["RefinerTransformerBlock"]
    # Context parallelism (ModelMixin.enable_parallelism): tokens are split at the first block and gathered
    # after proj_out, as in Wan. The RoPE / window plan is not split: the windowed processor works on the full
    # sequence after its Ulysses all-to-all. Per-token timesteps [B, N] are split like the tokens.
    _cp_plan = {
        "": {"timestep": ContextParallelInput(split_dim=1, expected_dims=2, split_output=False)},
        "blocks.0": {"hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False)},
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        rope_max_seq_len: int = 1024,
        temporal_window_size: int | None = 7,
    ) -> None:
        super().__init__()
        if temporal_window_size is not None and (
            int(temporal_window_size) != temporal_window_size or temporal_window_size < 1
        ):
            raise ValueError(f"temporal_window_size must be an integer >= 1 or None, got {temporal_window_size}")
        if temporal_window_size is not None and temporal_window_size % patch_size[0]:
            raise ValueError(
                f"temporal_window_size ({temporal_window_size}) must be a multiple of the temporal patch "
                f"size {patch_size[0]}"
            )
        inner_dim = num_attention_heads * attention_head_dim
        out_channels = out_channels or in_channels
        self.rope = WanRotaryPosEmbed(attention_head_dim, patch_size, rope_max_seq_len)
        self.patch_embedding = nn.Conv3d(in_channels, inner_dim, kernel_size=patch_size, stride=patch_size)
        self.condition_embedder = WanTimeTextImageEmbedding(
            dim=inner_dim, time_freq_dim=freq_dim, time_proj_dim=inner_dim * 6, text_embed_dim=text_dim
        )
        self.blocks = nn.ModuleList(
            [
                RefinerTransformerBlock(inner_dim, ffn_dim, num_attention_heads, qk_norm, cross_attn_norm, eps)
                for _ in range(num_layers)
            ]
        )
        self.norm_out = FP32LayerNorm(inner_dim, eps, elementwise_affine=False)
        self.proj_out = nn.Linear(inner_dim, out_channels * patch_size[0] * patch_size[1] * patch_size[2])
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, inner_dim) / inner_dim**0.5)
        self.gradient_checkpointing = False
        self.boundary_mode = "split"

    # ----------------------------------------------------------------------------------- windows
    def set_boundary_mode(self, mode: str) -> None:
        """Choose how the shifted blocks' boundary window is attended (same result either way).

        Args:
            mode: ``"split"`` (default: two unmasked calls, any attention backend) or ``"mask"``
                (one call with a block-diagonal bool mask, the paper's form; needs a
                mask-capable backend such as native SDPA). Measured on one H100 (refiner-1b, bf16,
                21 latent frames, window 7): split 1.20 s vs mask 1.38 s a forward at 720p, 4.38 s
                (10.6 GiB peak) vs 5.31 s (15.4 GiB) at 1088x1920, because the mask forces a slower
                kernel and a dense L x L mask; in fp32 the two agree to 5e-7 relative.
        """
        if mode not in BOUNDARY_MODES:
            raise ValueError(f"mode must be one of {BOUNDARY_MODES}, got {mode!r}")
        self.boundary_mode = mode

    def _rope(self, t_pos: torch.Tensor, span: int, pph: int, ppw: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Wan's 3D RoPE tables with per-frame temporal positions ``t_pos [F']`` in ``[0, span)``."""
        rope, f = self.rope, t_pos.numel()
        limit = rope.max_seq_len
        if span > limit or pph > limit or ppw > limit:
            raise ValueError(
                f"rope_max_seq_len={limit} is too small for {span} frames per window and a {pph}x{ppw} patch grid"
            )
        out = []
        for table in (rope.freqs_cos, rope.freqs_sin):
            t, hh, ww = table.split([rope.t_dim, rope.h_dim, rope.w_dim], dim=1)
            t = t[t_pos.to(table.device)].view(f, 1, 1, -1).expand(f, pph, ppw, -1)
            hh = hh[:pph].view(1, pph, 1, -1).expand(f, pph, ppw, -1)
            ww = ww[:ppw].view(1, 1, ppw, -1).expand(f, pph, ppw, -1)
            out.append(torch.cat([t, hh, ww], dim=-1).reshape(1, f * pph * ppw, 1, -1))
        return out[0], out[1]

    def window_plans(self, ppf: int, pph: int, ppw: int, device=None) -> list:
        """Per-block attention plans for a ``ppf x pph x ppw`` patch grid.

        Returns:
            ``[rope]`` (full attention in every block, Wan's ``(cos, sin)`` tuple) or
            ``[even_plan, odd_plan]`` (:class:`WindowPlan`; block ``i`` uses ``plans[i % 2]``).
        """
        size = self.config.temporal_window_size
        win = None if size is None else size // self.config.patch_size[0]
        if win is None or win >= ppf:
            return [self._rope(torch.arange(ppf, device=self.rope.freqs_cos.device), ppf, pph, ppw)]
        plans = []
        for shift in (0, win // 2):
            lay = window_layout(ppf, win, shift)
            cos, sin = self._rope(window_positions(ppf, win, shift, device=self.rope.freqs_cos.device), win, pph, ppw)
            mask = None
            if self.boundary_mode == "mask" and lay.boundary_needs_mask:
                mask = boundary_window_mask(ppf, win, shift, pph * ppw, device=device)[None, None]
            plans.append(WindowPlan(lay, pph * ppw, cos, sin, mask, self.boundary_mode))
        return plans

    # ----------------------------------------------------------------------------------- forward
    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor | None = None,
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        """Predict the flow-mapping velocity (same call as :meth:`WanTransformer3DModel.forward`).

        Args:
            hidden_states: ``[B, C_in, F, H, W]`` latent ``z_t``.
            timestep: ``[B]`` timesteps on Wan's scale (``t * 1000``), or ``[B, N]`` per token.
            encoder_hidden_states: ``[B, L, text_dim]`` text embeddings.
            encoder_hidden_states_image: Must be ``None`` (no image conditioning).
            return_dict: Return a :class:`Transformer2DModelOutput` instead of a tuple.
            attention_kwargs: Accepted for API parity (LoRA ``scale``); otherwise unused.

        Returns:
            ``Transformer2DModelOutput(sample=[B, C_out, F, H, W])`` or ``(sample,)``.
        """
        if encoder_hidden_states_image is not None:
            raise ValueError("RefinerTransformer3DModel takes no encoder_hidden_states_image")
        b, _, f, h, w = hidden_states.shape
        p_t, p_h, p_w = self.config.patch_size
        if f % p_t or h % p_h or w % p_w:
            raise ValueError(
                f"latent (F, H, W)=({f}, {h}, {w}) must be divisible by patch_size {tuple(self.config.patch_size)}"
            )
        ppf, pph, ppw = f // p_t, h // p_h, w // p_w
        cp = self._parallel_config.context_parallel_config if self._parallel_config is not None else None
        if cp is not None and (ppf * pph * ppw) % (cp.ring_degree * cp.ulysses_degree):
            raise ValueError(
                f"context parallelism: {ppf}x{pph}x{ppw} = {ppf * pph * ppw} refiner tokens (latent {f}x{h}x{w}) are "
                f"not divisible by the degree {cp.ring_degree * cp.ulysses_degree}"
            )
        plans = self.window_plans(ppf, pph, ppw, device=hidden_states.device)

        hidden_states = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()
        ts_seq_len = timestep.shape[1] if timestep.ndim == 2 else None
        temb, timestep_proj, encoder_hidden_states, _ = self.condition_embedder(
            timestep.flatten(), encoder_hidden_states, None, timestep_seq_len=ts_seq_len
        )
        timestep_proj = timestep_proj.unflatten(2 if ts_seq_len is not None else 1, (6, -1))

        for i, block in enumerate(self.blocks):
            plan = plans[i % len(plans)]
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(
                    block, hidden_states, encoder_hidden_states, timestep_proj, plan
                )
            else:
                hidden_states = block(hidden_states, encoder_hidden_states, timestep_proj, plan)

        if temb.ndim == 3:
            shift, scale = (self.scale_shift_table.unsqueeze(0) + temb.unsqueeze(2)).chunk(2, dim=2)
            shift, scale = shift.squeeze(2), scale.squeeze(2)
        else:
            shift, scale = (self.scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1)
        shift, scale = shift.to(hidden_states.device), scale.to(hidden_states.device)
        hidden_states = (self.norm_out(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        hidden_states = self.proj_out(hidden_states)
        hidden_states = hidden_states.reshape(b, ppf, pph, ppw, p_t, p_h, p_w, -1)
        output = hidden_states.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)

    # ----------------------------------------------------------------------------------- loading
    @classmethod
    def from_wan(
        cls, wan: WanTransformer3DModel, temporal_window_size: int | None = 7, **config_overrides
    ) -> "RefinerTransformer3DModel":
        """Build a refiner from a Wan transformer, copying every weight (strict).

        Args:
            wan: A text-to-video :class:`WanTransformer3DModel` (e.g. Wan2.1-T2V-1.3B).
            temporal_window_size: Window in latent frames (``None`` = full attention).
            **config_overrides: Other config fields that do not change weight shapes
                (e.g. ``rope_max_seq_len``).

        Returns:
            The refiner, on ``wan``'s device with each tensor in ``wan``'s dtype (weights copied,
            not shared).

        Raises:
            ValueError: If ``wan`` has image conditioning (I2V), which the refiner lacks.
            RuntimeError: If a weight is missing, unexpected, or has a different shape.
        """
        cfg = dict(wan.config)
        for key in ("image_dim", "added_kv_proj_dim", "pos_embed_seq_len"):
            if cfg.get(key) is not None:
                raise ValueError(f"from_wan supports text-to-video Wan only; wan.config.{key}={cfg[key]}")
        kwargs = {k: cfg[k] for k in _WAN_KEYS if k in cfg}
        kwargs.update(config_overrides, temporal_window_size=temporal_window_size)
        model = cls(**kwargs)
        state = {k: v.detach().clone() for k, v in wan.state_dict().items()}
        model.load_state_dict(state, strict=True, assign=True)
        model.rope.to(device=wan.rope.freqs_cos.device, dtype=wan.rope.freqs_cos.dtype)
        return model.train(wan.training)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """diffusers' ``save_pretrained`` (safetensors), written atomically.

        Files are first written to a temporary folder beside ``save_directory`` and then moved in with
        ``os.replace``, so an interrupted save never leaves a half-written weights file under the final name.
        """
        import shutil
        import tempfile

        target = Path(save_directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            super().save_pretrained(tmp, **kwargs)
            target.mkdir(parents=True, exist_ok=True)
            for f in sorted(tmp.iterdir(), key=lambda p: p.name.endswith(".json")):  # weights first, config last
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(f, target / f.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Load a saved refiner (safetensors weights only); see ``ModelMixin.from_pretrained``.

        Raises:
            ValueError: If ``use_safetensors=False`` is passed.
            FileNotFoundError: If a local path does not exist or holds no ``.safetensors`` file.
        """
        if kwargs.get("use_safetensors") is False:
            raise ValueError("RefinerTransformer3DModel loads safetensors weights only (use_safetensors=False given)")
        kwargs["use_safetensors"] = True
        path = Path(os.fspath(pretrained_model_name_or_path)).expanduser()
        folder = path / kwargs["subfolder"] if kwargs.get("subfolder") else path
        looks_local = path.is_absolute() or str(pretrained_model_name_or_path).startswith((".", "~")) or path.exists()
        if folder.is_dir():
            if not any(folder.glob("*.safetensors")):
                found = sorted(p.name for p in folder.iterdir())
                raise FileNotFoundError(
                    f"no .safetensors weights in {folder} (found {found}); refiner weights load from safetensors "
                    "only: re-save the model with save_pretrained(..., safe_serialization=True)"
                )
        elif looks_local:
            raise FileNotFoundError(f"refiner weights folder {folder} does not exist")
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def from_config_name(cls, name: str, **overrides) -> "RefinerTransformer3DModel":
        """Build a randomly initialised refiner from a shipped config (``"refiner-1b"``, ``"refiner-tiny"``, ...).

        Args:
            name: Shipped config name (see :func:`surf_video.models.configs.list_refiner_configs`).
            **overrides: Config fields to change (e.g. ``temporal_window_size=3``).
        """
        return cls.from_config({**load_refiner_config(name), **overrides})
