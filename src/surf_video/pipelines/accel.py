"""Accelerations that video-model users already run, applied to SURF's base and refiner (or a base alone).

Each option is applied to a transformer and can be removed again, so SURF and the plain base pipeline can
be compared with and without it:

- ``cache``: any diffusers cache config (``FirstBlockCacheConfig``, ``FasterCacheConfig``,
  ``TaylorSeerCacheConfig``, ``MagCacheConfig``, ...) on the base transformer; SURF resets its state at
  every resolution switch (``BaseAdapter.reset_cache``).
- ``attention_backend``: a backend of diffusers' attention dispatch (``native``, ``_native_cudnn``,
  ``_native_flash``, ``flash``, ``sage``, ...), for base and refiner.
- ``compile``: regional compilation of the repeated transformer blocks (``compile_repeated_blocks``), so
  each stage's shapes compile once and a switch does not recompile the whole model.
- ``quantize="fp8"``: torchao float8 dynamic activations and weights for the linear layers (GPUs of compute
  capability >= 8.9); irreversible for the loaded weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["CACHE_CONFIGS", "Accelerations", "apply_accelerations", "remove_accelerations", "QUANTIZE_MODES", "available_backends",
           "WAN_TAYLORSEER_IDENTIFIERS", "TAYLORSEER_IDENTIFIERS", "taylorseer_config", "BLOCK_IDENTIFIERS",
           "fora_config", "allow_cache_recompiles", "COMPILE_CACHE_RECOMPILE_LIMIT"]

QUANTIZE_MODES = (None, "fp8")
CACHE_CONFIGS = ("FirstBlockCacheConfig", "FasterCacheConfig", "TaylorSeerCacheConfig", "MagCacheConfig",
                 "PyramidAttentionBroadcastConfig", "SeaCacheConfig")


# TaylorSeer caches the modules whose names fully match these patterns. diffusers' defaults
# (``^blocks.*attn``, ``^transformer_blocks.*attn``, ...) fit HunyuanVideo but match no module of
# ``WanTransformer3DModel``, whose block attentions are ``attn1`` / ``attn2``: a default TaylorSeer on Wan
# skips nothing. Wan's patterns cache each block's two attentions and its FFN (as the TaylorSeer paper
# caches attention and MLP features).
WAN_TAYLORSEER_IDENTIFIERS = (r"^blocks\.\d+\.(attn1|attn2|ffn)$",)
TAYLORSEER_IDENTIFIERS = WAN_TAYLORSEER_IDENTIFIERS + (
    "^transformer_blocks.*attn", "^single_transformer_blocks.*attn", "^temporal_transformer_blocks.*attn")


def taylorseer_config(cache_identifiers=None, **kwargs):
    """A diffusers ``TaylorSeerCacheConfig`` that also caches Wan's blocks (``cache_identifiers`` default:
    :data:`TAYLORSEER_IDENTIFIERS`); other keyword arguments go to the config unchanged."""
    from diffusers import TaylorSeerCacheConfig

    ids = TAYLORSEER_IDENTIFIERS if cache_identifiers is None else cache_identifiers
    return TaylorSeerCacheConfig(cache_identifiers=list(ids), **kwargs)


#: whole transformer blocks of Wan (``blocks.<i>``) and HunyuanVideo (``transformer_blocks.<i>``, ...)
BLOCK_IDENTIFIERS = (r"^blocks\.\d+$", r"^transformer_blocks\.\d+$", r"^single_transformer_blocks\.\d+$")


def fora_config(cache_interval: int = 4, disable_cache_before_step: int = 3, cache_identifiers=None, **kwargs):
    """FORA-style reuse (Selvaraju et al., 2024): a ``TaylorSeerCacheConfig`` of order 0 on whole blocks.

    Every ``cache_interval``-th step (after ``disable_cache_before_step`` computed ones) runs the blocks; the
    others reuse each block's last output. It keeps one tensor per block and CFG branch, where TaylorSeer's
    per-module first-order factors keep six: at Wan 14B's 480p stage (32,760 tokens x 5,120) that is ~27 GB
    in bf16 against hundreds, the difference between fitting one 80 GB GPU or not.
    """
    ids = BLOCK_IDENTIFIERS if cache_identifiers is None else cache_identifiers
    return taylorseer_config(cache_interval=cache_interval, disable_cache_before_step=disable_cache_before_step,
                             max_order=0, cache_identifiers=ids, **kwargs)


@dataclass
class Accelerations:
    """What was applied to one transformer, so it can be removed."""

    cache: Any = None
    attention_backend: str | None = None
    compiled: bool = False
    quantized: str | None = None


def available_backends() -> list[str]:
    """Names accepted by diffusers' ``set_attention_backend`` in this install."""
    from diffusers.models.attention_dispatch import AttentionBackendName

    return [b.value for b in AttentionBackendName]


def _check(cache, attention_backend, compile, quantize) -> None:
    if cache is not None:
        import diffusers.hooks as hooks

        known = [getattr(hooks, n) for n in CACHE_CONFIGS if hasattr(hooks, n)]
        if not isinstance(cache, tuple(known)):
            raise ValueError(
                f"cache must be a diffusers cache config ({', '.join(c.__name__ for c in known)}), got {type(cache).__name__}"
            )
    if attention_backend is not None and attention_backend not in available_backends():
        raise ValueError(f"attention_backend must be one of {available_backends()}, got {attention_backend!r}")
    if attention_backend is not None and "sage" in attention_backend:
        from diffusers.models import attention_dispatch as ad

        if not getattr(ad, "_CAN_USE_SAGE_ATTN", False):
            # diffusers' own error names only the version; PyPI's newest wheel (1.0.6) is too old
            raise ValueError(
                f"attention_backend={attention_backend!r} needs SageAttention >= "
                f"{getattr(ad, '_REQUIRED_SAGE_VERSION', '2.1.1')} installed, which PyPI does not carry (its newest is "
                "1.0.6): build it from https://github.com/thu-ml/SageAttention, or pick another backend"
            )
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")


def _quantize_fp8(model: torch.nn.Module) -> None:
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_
    except ImportError as err:
        raise ValueError("quantize='fp8' needs torchao: pip install 'surf-video[fast]'") from err
    device = next(model.parameters()).device
    if device.type != "cuda" or torch.cuda.get_device_capability(device) < (8, 9):
        raise ValueError(
            "quantize='fp8' needs the model on a CUDA GPU of compute capability >= 8.9 (Ada, Hopper or newer); "
            f"the model is on {device}"
        )
    quantize_(model, Float8DynamicActivationFloat8WeightConfig())


#: dynamo's per-frame recompile limit while a cache and compilation are stacked (see apply_accelerations)
COMPILE_CACHE_RECOMPILE_LIMIT = 64


def allow_cache_recompiles() -> None:
    """Raises dynamo's per-frame recompile limit for a cache stacked on compiled blocks.

    A cache's hooks split each block's graph at its step counter (it runs outside the graph), so every
    (hooked module, stage size, computed or predicted) gets its own graph: more than dynamo's default of 8
    per frame, past which dynamo silently runs the rest of the frame eagerly.
    """
    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, COMPILE_CACHE_RECOMPILE_LIMIT)


def apply_accelerations(model, *, cache=None, attention_backend: str | None = None, compile: bool = False,
                        quantize: str | None = None, compile_kwargs: dict | None = None) -> Accelerations:
    """Applies the chosen accelerations to one transformer (a diffusers ``ModelMixin``).

    Args:
        model: the base transformer or the refiner.
        cache: a diffusers cache config, or None. Only meaningful for the base (it caches across steps).
        attention_backend: a diffusers attention backend name, or None to leave the model's as it is.
        compile: regional compilation of the repeated blocks.
        quantize: None or ``"fp8"``.
        compile_kwargs: passed to ``torch.compile`` (e.g. ``{"mode": "max-autotune-no-cudagraphs"}``).

    Returns:
        A record to pass to :func:`remove_accelerations`.
    """
    _check(cache, attention_backend, compile, quantize)
    done = Accelerations()
    if quantize == "fp8":  # before compile: the compiled graph must see the quantized linears
        _quantize_fp8(model)
        done.quantized = "fp8"
    if attention_backend is not None:
        model.set_attention_backend(attention_backend)
        done.attention_backend = attention_backend
    if cache is not None:
        model.enable_cache(cache)
        done.cache = cache
    if compile:
        if cache is not None or getattr(model, "is_cache_enabled", False):
            allow_cache_recompiles()
        # dynamic=False: each stage's shapes compile once; switching between them re-uses both graphs
        model.compile_repeated_blocks(**({"dynamic": False} | (compile_kwargs or {})))
        done.compiled = True
    return done


def remove_accelerations(model, done: Accelerations) -> None:
    """Undoes :func:`apply_accelerations` (quantization cannot be undone on the loaded weights)."""
    if done.cache is not None:
        model.disable_cache()
    if done.attention_backend is not None:
        model.reset_attention_backend()
    if done.compiled:
        for sub in model.modules():
            if sub.__class__.__name__ in (getattr(model, "_repeated_blocks", None) or ()):
                sub._compiled_call_impl = None
    if done.quantized:
        raise ValueError("quantize='fp8' replaced the linear weights and cannot be removed; reload the model")
