"""Full-size base transformers and refiners with random weights, built directly on the device.

Speed does not depend on the weights, so the speed benchmarks build every network from its published config
(no download). Used by :mod:`surf_video.bench.speed` and ``benchmarks/multigpu/cp_speed.py``.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["WAN14B", "WAN1_3B", "WAN_TINY", "HUNYUAN13B", "HUNYUAN_TINY", "ARCHS", "build_transformer",
           "build_refiner", "build_pipeline"]

WAN14B = dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=16, out_channels=16,
              text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
              qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
WAN1_3B = dict(WAN14B, num_attention_heads=12, ffn_dim=8960, num_layers=30)
WAN_TINY = dict(WAN14B, num_attention_heads=2, attention_head_dim=16, text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2)
HUNYUAN13B: dict = {}  # diffusers' HunyuanVideoTransformer3DModel defaults are the 13B model
HUNYUAN_TINY = dict(num_attention_heads=2, attention_head_dim=16, num_layers=1, num_single_layers=1,
                    num_refiner_layers=1, text_embed_dim=32, pooled_projection_dim=8, rope_axes_dim=(4, 6, 6))

#: name -> (family, transformer config, refiner config name, refiner overrides)
ARCHS = {
    "wan14b": ("wan", WAN14B, "refiner-1b", {}),
    "wan1.3b": ("wan", WAN1_3B, "refiner-1b", {}),
    "hunyuan13b": ("hunyuan", HUNYUAN13B, "refiner-1b", {}),
    "refiner-1b": ("refiner", None, "refiner-1b", {}),
    "refiner-paper-1b": ("refiner", None, "refiner-paper-1b", {}),
    "wan-tiny": ("wan", WAN_TINY, "refiner-tiny", {"text_dim": 32}),
    "hunyuan-tiny": ("hunyuan", HUNYUAN_TINY, "refiner-tiny", {"text_dim": 32}),
    "refiner-tiny": ("refiner", None, "refiner-tiny", {"text_dim": 32}),
}
@contextlib.contextmanager
def _init_on(device, dtype):
    """Create parameters directly on ``device`` in ``dtype`` (a 14B model in fp32 on the CPU takes minutes)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(old)


def _finish(model, dtype):
    # As from_pretrained(torch_dtype=bf16) does: the model's _keep_in_fp32_modules stay in float32.
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, p in model.named_parameters():
        if any(k in name.split(".") for k in keep):
            p.data = p.data.float()
    return model.eval().requires_grad_(False)


def build_transformer(family: str, cfg: dict, device, dtype):
    """The base transformer at full size with random weights, built on ``device``."""
    from diffusers import HunyuanVideoTransformer3DModel, WanTransformer3DModel

    cls = WanTransformer3DModel if family == "wan" else HunyuanVideoTransformer3DModel
    with _init_on(device, dtype):
        return _finish(cls(**cfg), dtype)


def build_refiner(name: str, device, dtype, **overrides):
    from ..models.refiner import RefinerTransformer3DModel

    with _init_on(device, dtype):
        return _finish(RefinerTransformer3DModel.from_config_name(name, **overrides), dtype)


def build_pipeline(family: str, transformer, device, dtype, text_dim: int = 4096, pooled_dim: int = 768):
    """A real ``WanPipeline`` / ``HunyuanVideoPipeline`` around ``transformer`` with a small random VAE.

    Wan: no tokenizer / text encoder (the benchmark passes ``prompt_embeds``). HunyuanVideo: small random
    LLaMA / CLIP encoders with the real output widths, so ``encode_prompt`` runs as for users.
    """
    from diffusers import (AutoencoderKLHunyuanVideo, AutoencoderKLWan, FlowMatchEulerDiscreteScheduler,
                           HunyuanVideoPipeline, UniPCMultistepScheduler, WanPipeline)

    with _init_on(device, dtype):
        if family == "wan":
            vae = AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                   temperal_downsample=[False, True, True]).eval()
            sched = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
            pipe = WanPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=vae, scheduler=sched)
        else:
            from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

            from ..pipelines.tiny import _HUNYUAN_TEMPLATE_WORDS, TINY_WORDS, word_tokenizer

            words = TINY_WORDS + _HUNYUAN_TEMPLATE_WORDS.split()
            tok, tok2 = word_tokenizer(words, bos=True), word_tokenizer(words, model_max_length=77, bos=True)
            heads = max(1, text_dim // 128)
            # 2 layers: the pipeline reads hidden_states[-3] (it skips the last two layers).
            llama = LlamaModel(LlamaConfig(vocab_size=len(tok), hidden_size=text_dim, intermediate_size=256,
                                           num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=heads,
                                           max_position_embeddings=1024, pad_token_id=0, bos_token_id=3,
                                           eos_token_id=1)).eval()
            clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok2), hidden_size=pooled_dim, intermediate_size=64,
                                                num_hidden_layers=1, num_attention_heads=max(1, pooled_dim // 64),
                                                projection_dim=pooled_dim, max_position_embeddings=77,
                                                pad_token_id=0, bos_token_id=3, eos_token_id=1)).eval()
            vae = AutoencoderKLHunyuanVideo(
                latent_channels=16, down_block_types=("HunyuanVideoDownBlock3D",) * 4,
                up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                norm_num_groups=4, spatial_compression_ratio=8, temporal_compression_ratio=4).eval()
            pipe = HunyuanVideoPipeline(text_encoder=llama, tokenizer=tok, transformer=transformer, vae=vae,
                                        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), text_encoder_2=clip,
                                        tokenizer_2=tok2)
    pipe.set_progress_bar_config(disable=True)
    return pipe
