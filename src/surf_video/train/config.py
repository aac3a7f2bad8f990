"""Typed configuration of refiner training, loaded from a YAML recipe.

A recipe has the sections ``model``, ``data``, ``encoder``, ``text``, ``degrade``, ``timestep``,
``optim``, ``phases``, ``checkpoint``, ``logging`` and ``validation`` plus a few top-level keys
(``output_dir``, ``seed``, ``batch_size``, ``mixed_precision``, ...). Unknown keys raise
``ValueError`` so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from surf_video.train.degrade import DegradeConfig

__all__ = [
    "ModelConfig",
    "DataConfig",
    "EncoderConfig",
    "TextConfig",
    "TimestepConfig",
    "OptimConfig",
    "PhaseConfig",
    "CheckpointConfig",
    "LoggingConfig",
    "ValidationConfig",
    "TrainConfig",
    "load_config",
    "from_dict",
]


def from_dict(cls, data: dict | None, where: str = ""):
    """Build dataclass ``cls`` from a (nested) dict, rejecting unknown keys."""
    if data is None:
        return cls()
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where or cls.__name__}; allowed: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        sub = getattr(cls, "_nested", {}).get(name)
        if sub is not None:
            if isinstance(value, list):
                kwargs[name] = [from_dict(sub, v, f"{where}.{name}[{i}]") for i, v in enumerate(value)]
            else:
                kwargs[name] = from_dict(sub, value, f"{where}.{name}")
        else:
            kwargs[name] = value
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


@dataclass
class ModelConfig:
    """Which transformer to train.

    ``type``: ``refiner`` (``RefinerTransformer3DModel``) or ``wan`` (diffusers
    ``WanTransformer3DModel``). ``name``: a named refiner config (``refiner-tiny``, ``refiner-1b``);
    ``config``: explicit constructor kwargs (wins over ``name``). ``init_from_wan``: a diffusers Wan
    transformer folder (or a model folder with a ``transformer`` subfolder) to start from.
    """

    type: str = "refiner"
    name: str | None = None
    config: dict = field(default_factory=dict)
    init_from_wan: str | None = None
    temporal_window_size: int | None = None
    gradient_checkpointing: bool = False

    def validate(self) -> None:
        if self.type not in ("refiner", "wan"):
            raise ValueError(f"model.type must be 'refiner' or 'wan', got {self.type!r}")
        if self.name is None and not self.config and self.init_from_wan is None:
            raise ValueError("model needs one of name, config or init_from_wan")


@dataclass
class DataConfig:
    """Training data.

    ``type``: ``videos`` (folder or CSV/JSONL manifest at ``path``), ``latents`` (a cache written by
    ``surf cache-latents``), ``procedural`` (``source`` = ``"module:callable"`` with
    ``sample(index, rng) -> (hr, lr | None, caption)``; ``source_kwargs`` are passed to a factory
    when ``source`` names one) or ``synthetic`` (built-in moving shapes, for tests and smoke runs).
    """

    type: str = "synthetic"
    path: str | None = None
    video_column: str = "video"
    caption_column: str = "caption"
    source: str | None = None
    source_kwargs: dict = field(default_factory=dict)
    num_samples: int = 64
    num_frames: int = 9
    size: list[int] = field(default_factory=lambda: [32, 32])
    frame_stride: int = 1
    num_workers: int = 0
    latent_crop: str = "start"

    def validate(self) -> None:
        allowed = ("videos", "latents", "procedural", "synthetic")
        if self.type not in allowed:
            raise ValueError(f"data.type must be one of {allowed}, got {self.type!r}")
        if self.type in ("videos", "latents") and not self.path:
            raise ValueError(f"data.path is required for data.type={self.type!r}")
        if self.type == "procedural" and not self.source:
            raise ValueError("data.source ('module:callable') is required for data.type='procedural'")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"data.size must be [height, width] > 0, got {self.size}")
        if self.num_frames < 1 or self.frame_stride < 1:
            raise ValueError("data.num_frames and data.frame_stride must be >= 1")
        if self.latent_crop not in ("start", "random"):
            raise ValueError(f"data.latent_crop must be 'start' or 'random', got {self.latent_crop!r}")


@dataclass
class EncoderConfig:
    """Pixels -> latents. ``identity`` (pixels in [-1, 1] are the latents), ``wan`` (an
    ``AutoencoderKLWan`` folder at ``path``, normalised with its latents_mean / latents_std) or
    ``callable`` (``path`` = ``"module:factory"`` returning an object with encode/decode)."""

    type: str = "identity"
    path: str | None = None
    subfolder: str | None = None

    def validate(self) -> None:
        if self.type not in ("identity", "wan", "callable"):
            raise ValueError(f"encoder.type must be identity, wan or callable, got {self.type!r}")
        if self.type != "identity" and not self.path:
            raise ValueError(f"encoder.path is required for encoder.type={self.type!r}")


@dataclass
class TextConfig:
    """Caption -> embeddings ``[L, dim]``. ``hash`` (a fixed seeded table over UTF-8 bytes; no
    download, for tests), ``t5`` (a transformers UMT5/T5 encoder folder at ``path``), ``cached``
    (embeddings stored by ``surf cache-latents``), ``callable`` (``path`` = ``"module:factory"``;
    ``factory()`` returns ``f(captions, device=None) -> [B, L, D]``) or ``none`` (zeros)."""

    type: str = "hash"
    path: str | None = None
    dim: int = 16
    max_length: int = 16

    def validate(self) -> None:
        if self.type not in ("hash", "t5", "cached", "callable", "none"):
            raise ValueError(f"text.type must be hash, t5, cached, callable or none, got {self.type!r}")
        if self.type in ("t5", "callable") and not self.path:
            raise ValueError(f"text.path is required for text.type={self.type!r}")


@dataclass
class TimestepConfig:
    """Density of t in [0, 1]: ``uniform`` or ``logit_normal`` (mean, std), then the flow shift
    ``t' = s t / (1 + (s - 1) t)`` (s = ``shift``, 1 = none)."""

    density: str = "uniform"
    mean: float = 0.0
    std: float = 1.0
    shift: float = 1.0

    def validate(self) -> None:
        if self.density not in ("uniform", "logit_normal"):
            raise ValueError(f"timestep.density must be uniform or logit_normal, got {self.density!r}")
        if self.shift <= 0 or self.std <= 0:
            raise ValueError("timestep.shift and timestep.std must be > 0")


@dataclass
class OptimConfig:
    lr: float = 5e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.01
    eps: float = 1e-8
    warmup_steps: int = 0
    schedule: str = "constant"
    max_grad_norm: float | None = 1.0
    ema_decay: float | None = None
    gradient_accumulation_steps: int = 1

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.schedule not in ("constant", "cosine", "linear"):
            raise ValueError(f"optim.schedule must be constant, cosine or linear, got {self.schedule!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"optim.ema_decay must be in (0, 1) or null, got {self.ema_decay}")
        if self.gradient_accumulation_steps < 1:
            raise ValueError("optim.gradient_accumulation_steps must be >= 1")


@dataclass
class PhaseConfig:
    """One stage of progressive training: ``steps`` optimizer steps at ``num_frames`` x ``size``
    (``None`` = the data section's value)."""

    steps: int = 1
    num_frames: int | None = None
    size: list[int] | None = None
    name: str | None = None

    def validate(self) -> None:
        if self.steps < 1:
            raise ValueError(f"phase steps must be >= 1, got {self.steps}")


@dataclass
class CheckpointConfig:
    every: int = 500
    keep: int = 3

    def validate(self) -> None:
        if self.every < 1 or self.keep < 1:
            raise ValueError("checkpoint.every and checkpoint.keep must be >= 1")


@dataclass
class LoggingConfig:
    every: int = 10
    tensorboard: bool = True
    plot_every: int = 100


@dataclass
class ValidationConfig:
    """Every ``every`` steps (0 = never) refine ``num_samples`` fixed clips with ``num_steps``
    Euler steps and write ``lr | refined | hr`` videos."""

    every: int = 0
    num_samples: int = 2
    num_steps: int = 10
    fps: int = 8


@dataclass
class TrainConfig:
    output_dir: str = "runs/refiner"
    seed: int = 0
    batch_size: int = 1
    mixed_precision: str = "no"
    cpu_threads: int | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    text: TextConfig = field(default_factory=TextConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    timestep: TimestepConfig = field(default_factory=TimestepConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    phases: list[PhaseConfig] = field(default_factory=lambda: [PhaseConfig(steps=100)])
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    _nested: ClassVar[dict] = {
        "model": ModelConfig,
        "data": DataConfig,
        "encoder": EncoderConfig,
        "text": TextConfig,
        "degrade": DegradeConfig,
        "timestep": TimestepConfig,
        "optim": OptimConfig,
        "phases": PhaseConfig,
        "checkpoint": CheckpointConfig,
        "logging": LoggingConfig,
        "validation": ValidationConfig,
    }

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size (per process) must be >= 1, got {self.batch_size}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1 or null, got {self.cpu_threads}")
        if not self.phases:
            raise ValueError("phases must list at least one phase")

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)




def load_config(path: str | Path | dict, overrides: dict | None = None) -> TrainConfig:
    """Load a YAML recipe (or a dict) into a validated :class:`TrainConfig`.

    ``degrade`` may be a mapping or the path of a separate YAML file (relative to the recipe).
    """
    base = Path(".")
    if isinstance(path, dict):
        data = dict(path)
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        base = path.parent
    if overrides:
        data.update(overrides)
    if isinstance(data.get("degrade"), str):
        dpath = Path(data["degrade"])
        if not dpath.is_absolute():
            dpath = base / dpath
        data["degrade"] = yaml.safe_load(dpath.read_text()) or {}
    return from_dict(TrainConfig, data, "config")
