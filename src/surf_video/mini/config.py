"""SURF-Mini architecture and size constants.

SURF-Mini is a miniature Wan-style text-to-video family trained on the procedural world
(:mod:`surf_video.world`). Its resolutions follow the paper's ratios with an optimal size R:
preview R/2, targets 1.5R and 2.25R. Every size is square and every clip has 17 frames
(5 latent frames after the VAE's 4x temporal compression).

The dataclasses below are the single source of the architecture; ``build_*`` in
:mod:`surf_video.mini.build` turn them into diffusers / transformers modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = [
    "OPTIMAL_SIZE",
    "PREVIEW_SIZE",
    "TARGET_SIZES",
    "SUPPORTED_SIZES",
    "NUM_FRAMES",
    "MAX_SEQUENCE_LENGTH",
    "FLOW_SHIFT",
    "GUIDANCE_SCALE",
    "TextEncoderConfig",
    "VAEConfig",
    "TransformerConfig",
    "RefinerConfig",
    "MiniConfig",
]

OPTIMAL_SIZE = 128
PREVIEW_SIZE = OPTIMAL_SIZE // 2  # 64
TARGET_SIZES = (OPTIMAL_SIZE * 3 // 2, OPTIMAL_SIZE * 9 // 4)  # (192, 288)
SUPPORTED_SIZES = (PREVIEW_SIZE, OPTIMAL_SIZE) + TARGET_SIZES
NUM_FRAMES = 17
# Captions of the world are short; the transformer is trained with the same zero padding to this
# length that WanPipeline applies, so pass max_sequence_length=MAX_SEQUENCE_LENGTH at inference.
MAX_SEQUENCE_LENGTH = 40
# Flow shift of the training-time sigma sampling and of the shipped scheduler (Wan: 3.0 at 480p).
FLOW_SHIFT = 3.0
# Classifier-free guidance scale of SURF-Mini's sampling defaults: chosen for the v6 base on 300 development
# prompts (guidance 2 / 3 / 4 / 5 / 6 / 7 at 40 steps; benchmarks/results/mini_v6), never on the test prompts.
GUIDANCE_SCALE = 3.0


@dataclass
class TextEncoderConfig:
    """A small UMT5 encoder (transformers ``UMT5Config`` fields)."""

    d_model: int = 128
    d_kv: int = 32
    num_heads: int = 4
    num_layers: int = 2
    d_ff: int = 256
    relative_attention_num_buckets: int = 16
    relative_attention_max_distance: int = 32
    feed_forward_proj: str = "gated-gelu"


@dataclass
class VAEConfig:
    """A small ``AutoencoderKLWan``: 8x spatial (3 downsamplings), 4x temporal (2 of them)."""

    base_dim: int = 16
    z_dim: int = 16
    # Channels grow to 128 at the 1/8 level, where they are cheap; full resolution keeps 16.
    dim_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    num_res_blocks: int = 1
    temperal_downsample: list[bool] = field(default_factory=lambda: [False, True, True])


@dataclass
class TransformerConfig:
    """A small ``WanTransformer3DModel`` (patch 1x2x2 like Wan 2.1).

    The shipped base (v5, v6) has 16 blocks: 8 were trained first (~15k steps), then
    :func:`surf_video.mini.build.deepen_transformer` grew it to 16 (``grow_layers``) and training went on.
    """

    num_attention_heads: int = 4
    attention_head_dim: int = 64
    num_layers: int = 16
    ffn_dim: int = 1024
    freq_dim: int = 128
    rope_max_seq_len: int = 256


@dataclass
class RefinerConfig:
    """Size of the SURF-Mini refiner (``RefinerTransformer3DModel``)."""

    num_attention_heads: int = 4
    attention_head_dim: int = 64
    num_layers: int = 6
    ffn_dim: int = 1024
    freq_dim: int = 128
    temporal_window_size: int = 2  # latent frames of 5 (the paper: 7 of 21)
    rope_max_seq_len: int = 256


@dataclass
class MiniConfig:
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    refiner: RefinerConfig = field(default_factory=RefinerConfig)

    def to_dict(self) -> dict:
        return asdict(self)
