"""Build SURF-Mini components from :mod:`surf_video.mini.config` (random weights).

The tokenizer is a word-level ``tokenizers`` model (built offline, no download) wrapped as a
``PreTrainedTokenizerFast``; the text encoder is a ``UMT5EncoderModel`` from a config; the VAE is an
``AutoencoderKLWan``; the base is a ``WanTransformer3DModel``; the scheduler is the flow-matching
``UniPCMultistepScheduler`` the Wan 2.1 checkpoints ship.
"""

from __future__ import annotations

import re

import torch

from .config import FLOW_SHIFT, MiniConfig, RefinerConfig, TextEncoderConfig, TransformerConfig, VAEConfig

__all__ = [
    "SPECIAL_TOKENS",
    "BASE_WORDS",
    "caption_words",
    "build_tokenizer",
    "build_text_encoder",
    "build_vae",
    "build_transformer",
    "deepen_transformer",
    "build_scheduler",
    "build_refiner",
    "build_pipeline",
    "count_parameters",
]

SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]
# Words the world's captions may use; the world's own VOCAB is merged in when available so the
# tokenizer covers it exactly. Unknown words map to <unk>.
BASE_WORDS = (
    "a an the and on with of in at over is one two three big small large tiny medium "
    "red orange yellow green blue purple pink white black gray grey brown cyan magenta "
    "circle square triangle star ring diamond cross hexagon "
    "moving left right up down diagonally bouncing spinning growing shrinking still static "
    "background plain gradient striped stripes checker checkered noise noisy textured "
    "up-left up-right down-left down-right , ."
).split()


def caption_words(text: str) -> list[str]:
    """Split a caption the way the tokenizer does (lower case, words and punctuation)."""
    return re.findall(r"[\w\-]+|[^\w\s]", text.lower())


def _vocabulary() -> list[str]:
    words = list(BASE_WORDS)
    try:  # the world may not be importable in a stripped install; BASE_WORDS then suffice
        from surf_video.world import VOCAB  # type: ignore

        for w in VOCAB:
            for piece in caption_words(str(w)):
                words.append(piece)
    except Exception:  # noqa: BLE001 - optional dependency on a sibling package
        pass
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w.lower(), None)
    return SPECIAL_TOKENS + sorted(seen)


def build_tokenizer(words: list[str] | None = None):
    """Word-level tokenizer: lower-cases, splits on whitespace and punctuation, appends ``</s>``.

    Args:
        words: vocabulary (without special tokens); default: the world's words.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` with pad id 0, eos id 1, unk id 2.
    """
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab_list = _vocabulary() if words is None else SPECIAL_TOKENS + [w for w in words if w not in SPECIAL_TOKENS]
    vocab = {w: i for i, w in enumerate(vocab_list)}
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[^\w\-]"), behavior="isolated")]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", padding_side="right"
    )


def build_text_encoder(vocab_size: int, cfg: TextEncoderConfig | None = None):
    """A small ``UMT5EncoderModel`` with random weights."""
    from transformers import UMT5Config, UMT5EncoderModel

    cfg = cfg or TextEncoderConfig()
    conf = UMT5Config(
        vocab_size=vocab_size,
        d_model=cfg.d_model,
        d_kv=cfg.d_kv,
        d_ff=cfg.d_ff,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        relative_attention_num_buckets=cfg.relative_attention_num_buckets,
        relative_attention_max_distance=cfg.relative_attention_max_distance,
        feed_forward_proj=cfg.feed_forward_proj,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        tie_word_embeddings=False,
    )
    return UMT5EncoderModel(conf)


def build_vae(cfg: VAEConfig | None = None, latents_mean=None, latents_std=None):
    """A small ``AutoencoderKLWan`` (8x spatial, 4x temporal compression)."""
    from diffusers import AutoencoderKLWan

    cfg = cfg or VAEConfig()
    mean = list(latents_mean) if latents_mean is not None else [0.0] * cfg.z_dim
    std = list(latents_std) if latents_std is not None else [1.0] * cfg.z_dim
    return AutoencoderKLWan(
        base_dim=cfg.base_dim,
        z_dim=cfg.z_dim,
        dim_mult=list(cfg.dim_mult),
        num_res_blocks=cfg.num_res_blocks,
        attn_scales=[],
        temperal_downsample=list(cfg.temperal_downsample),
        latents_mean=mean,
        latents_std=std,
    )


def _dit_kwargs(cfg, z_dim: int, text_dim: int) -> dict:
    """The arguments the base and the refiner share: the refiner is built like a Wan transformer."""
    return dict(
        patch_size=(1, 2, 2),
        num_attention_heads=cfg.num_attention_heads,
        attention_head_dim=cfg.attention_head_dim,
        in_channels=z_dim,
        out_channels=z_dim,
        text_dim=text_dim,
        freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim,
        num_layers=cfg.num_layers,
        rope_max_seq_len=cfg.rope_max_seq_len,
    )


def build_transformer(cfg: TransformerConfig | None = None, z_dim: int = 16, text_dim: int = 128):
    """A small ``WanTransformer3DModel`` (text-to-video, no image branch)."""
    from diffusers import WanTransformer3DModel

    cfg = cfg or TransformerConfig()
    return WanTransformer3DModel(
        **_dit_kwargs(cfg, z_dim, text_dim),
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
    )


def deepen_transformer(transformer, num_layers: int):
    """A deeper copy of a ``WanTransformer3DModel`` that computes exactly the same function.

    The trained blocks keep their order, spread evenly among the new ones; each new block starts
    as the identity (the output projections of its self-attention, cross-attention and
    feed-forward are zero, so every residual branch adds 0) and learns from there. This is how a
    trained base grows when it runs out of capacity, without starting over.

    Args:
        transformer: the trained model (its config gives everything but the depth).
        num_layers: the new depth, at least the current one.

    Returns:
        A new ``WanTransformer3DModel`` with ``num_layers`` blocks, on the same device and dtype.
    """
    from diffusers import WanTransformer3DModel

    old = transformer.config.num_layers
    if num_layers < old:
        raise ValueError(f"num_layers must be >= the current depth {old}, got {num_layers}")
    cfg = {k: v for k, v in transformer.config.items() if not k.startswith("_")}
    grown = WanTransformer3DModel(**{**cfg, "num_layers": num_layers}).to(next(transformer.parameters()).device)
    # old block i goes to slot round(i * num_layers / old): 8 -> 16 puts them at 0, 2, 4, ...
    slots = {round(i * num_layers / old): i for i in range(old)}
    state = {k: v for k, v in transformer.state_dict().items() if not k.startswith("blocks.")}
    missing, unexpected = grown.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("blocks.") for k in missing):  # only the blocks are copied one by one
        raise RuntimeError(f"deepen_transformer: state dicts differ outside the blocks: {unexpected or missing}")
    with torch.no_grad():
        for j, block in enumerate(grown.blocks):
            if j in slots:
                block.load_state_dict(transformer.blocks[slots[j]].state_dict())
                continue
            for lin in (block.attn1.to_out[0], block.attn2.to_out[0], block.ffn.net[2]):
                lin.weight.zero_()
                lin.bias.zero_()
    # every parameter keeps the dtype of its source (diffusers keeps some in fp32 inside a bf16 model);
    # a new block takes block 0's
    src = dict(transformer.named_parameters())
    for name, p in grown.named_parameters():
        if name.startswith("blocks."):
            j, rest = name.split(".", 2)[1:]
            name = f"blocks.{slots.get(int(j), 0)}.{rest}"
        p.data = p.data.to(src[name].dtype)
    return grown


def build_scheduler(flow_shift: float = FLOW_SHIFT):
    """Wan 2.1's flow-matching UniPC scheduler."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=flow_shift
    )


def build_refiner(cfg: RefinerConfig | None = None, z_dim: int = 16, text_dim: int = 128):
    """A small ``RefinerTransformer3DModel`` (the team's SURF refiner) with random weights."""
    from surf_video.models.refiner import RefinerTransformer3DModel  # type: ignore

    cfg = cfg or RefinerConfig()
    return RefinerTransformer3DModel(**_dit_kwargs(cfg, z_dim, text_dim), temporal_window_size=cfg.temporal_window_size)


def build_pipeline(cfg: MiniConfig | None = None):
    """A complete ``WanPipeline`` of SURF-Mini with random weights (for tests and sizing)."""
    from diffusers import WanPipeline

    cfg = cfg or MiniConfig()
    tokenizer = build_tokenizer()
    text_encoder = build_text_encoder(len(tokenizer), cfg.text_encoder)
    vae = build_vae(cfg.vae)
    transformer = build_transformer(cfg.transformer, z_dim=cfg.vae.z_dim, text_dim=cfg.text_encoder.d_model)
    return WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=build_scheduler()
    )


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
