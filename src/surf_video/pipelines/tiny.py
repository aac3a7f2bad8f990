"""Tiny, randomly initialised diffusers pipelines built locally (no download).

Used by the tests and by examples that must run without a model hub: the same classes as the real
Wan 2.1 and HunyuanVideo pipelines, at toy sizes.
"""

from __future__ import annotations

import re

import torch

__all__ = ["word_tokenizer", "tiny_wan_pipeline", "tiny_hunyuan_pipeline", "TINY_WORDS"]

TINY_WORDS = (
    "a an the red green blue yellow white black circle square triangle star ring moving left right up down "
    "big small on background striped plain bouncing spinning growing still and cat dog video of"
).split()


def word_tokenizer(words=TINY_WORDS, model_max_length: int = 512, bos: bool = False):
    """A word-level ``PreTrainedTokenizerFast`` built offline with the ``tokenizers`` library.

    Args:
        words: the vocabulary (lower case); anything else maps to ``<unk>``.
        model_max_length: longest sequence the tokenizer pads or truncates to.
        bos: prepend ``<s>`` and append ``</s>`` (CLIP/LLaMA-like) instead of appending ``</s>`` only (T5-like).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>", "<s>"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(words)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])]
        )
    else:
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", bos_token="<s>",
        model_max_length=model_max_length,
    )


def _scheduler(kind: str, shift: float):
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if kind == "euler":
        return FlowMatchEulerDiscreteScheduler(shift=shift)
    if kind == "unipc":
        return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift)
    raise ValueError(f"scheduler must be 'euler' or 'unipc', got {kind!r}")


def tiny_wan_pipeline(scheduler: str = "euler", seed: int = 0, shift: float = 3.0, z_dim: int = 16):
    """A ``WanPipeline`` with a 2-layer transformer, a tiny ``AutoencoderKLWan`` and a tiny UMT5 encoder."""
    from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=z_dim, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    tok = word_tokenizer()
    enc = UMT5EncoderModel(UMT5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                      relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1))
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=z_dim, out_channels=z_dim,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    pipe = WanPipeline(tokenizer=tok, text_encoder=enc.eval(), transformer=transformer.eval(), vae=vae.eval(),
                       scheduler=_scheduler(scheduler, shift))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_hunyuan_pipeline(scheduler: str = "euler", seed: int = 0, shift: float = 7.0):
    """A ``HunyuanVideoPipeline`` with tiny LLaMA and CLIP text encoders, transformer and VAE."""
    from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoPipeline, HunyuanVideoTransformer3DModel
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    torch.manual_seed(seed)
    words = TINY_WORDS + re.findall(r"[a-z]+", _HUNYUAN_TEMPLATE_WORDS)
    tok = word_tokenizer(words, bos=True)
    tok2 = word_tokenizer(words, model_max_length=77, bos=True)
    llama = LlamaModel(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=37, num_hidden_layers=4,
                                   num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                                   pad_token_id=0, bos_token_id=3, eos_token_id=1))
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok2), hidden_size=8, intermediate_size=37, num_hidden_layers=2,
                                        num_attention_heads=4, projection_dim=32, max_position_embeddings=77,
                                        pad_token_id=0, bos_token_id=3, eos_token_id=1))
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, patch_size=1, patch_size_t=1, guidance_embeds=True,
        text_embed_dim=16, pooled_projection_dim=8, rope_axes_dim=(2, 4, 4),
    )
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4, up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8), layers_per_block=1, act_fn="silu", norm_num_groups=4,
        scaling_factor=0.476986, spatial_compression_ratio=8, temporal_compression_ratio=4, mid_block_add_attention=True,
    )
    pipe = HunyuanVideoPipeline(text_encoder=llama.eval(), tokenizer=tok, transformer=transformer.eval(),
                                vae=vae.eval(), scheduler=_scheduler(scheduler, shift), text_encoder_2=clip.eval(),
                                tokenizer_2=tok2)
    pipe.set_progress_bar_config(disable=True)
    return pipe


_HUNYUAN_TEMPLATE_WORDS = (
    "system describe the video by detailing the following aspects main content and theme of object color shape "
    "size texture quantity text spatial relationships actions events behaviors temporal relationships camera "
    "angles movements transitions user assistant start header id end eot"
)
