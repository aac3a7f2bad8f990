"""YAML recipes for SURF-Mini training (typed dataclasses) and small checkpoint helpers."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "VAERecipe",
    "BaseRecipe",
    "RefinerRecipe",
    "load_recipe",
    "atomic_save_dir",
    "write_json",
    "wallclock_decay",
]


@dataclass
class VAERecipe:
    seed: int = 0
    num_clips: int = 3000  # clips rendered at 128 px
    num_clips_hr: int = 600  # clips rendered at 288 px (random 128 px crops)
    batch_size: int = 16
    # With an L1-dominated loss the VAE "collapses" to drawing backgrounds only above lr ~1e-4: L1's
    # gradient is a sign, so the few object pixels pull no harder than background ones and a decoder
    # that leaves the objects out is a stable minimum (vae_probe overfit: 19.4 dB at 3e-4). Weighting
    # the squared error like the L1 removes it: the same probe reaches 36.4 dB at 3e-4 (1e-3 does not learn).
    lr: float = 3e-4
    mse_weight: float = 1.0  # loss = L1 + mse_weight * MSE (+ kl_weight * mean(mu^2)); v1 used 0.05
    warmup_steps: int = 300
    max_steps: int = 1500
    max_minutes: float = 3.0
    kl_weight: float = 1e-4  # weight of the L2 pull of the latent means towards 0
    latent_noise: float = 0.1  # std of the noise added to the latent means while training the decoder
    crop: int = 0  # train on random crop x crop windows (0: full R clips); the VAE is convolutional
    frames: int = 17  # train on random windows of this many frames (1 + 4k)
    data_size: int = 128  # size the "R" clips are rendered at
    # Share of steps that train on single frames (images) instead of clips: the causal VAE runs one
    # chunk instead of five, so an image step is several times cheaper and teaches the spatial code.
    image_fraction: float = 0.0
    image_batch_size: int = 0  # batch of an image step (0: 4 x batch_size)
    lr_decay_frac: float = 0.0  # decay the lr linearly to 5% over this final share of the time budget
    # False: train the decoder only (encoder and quant_conv frozen, the resumed VAE's latent statistics kept), so
    # a base trained in this latent space stays valid while the decoder improves (needs --resume)
    train_encoder: bool = True
    data_cache: str = ""  # folder to keep rendered clips in (.npy) so parallel runs render once
    log_every: int = 50
    device_threads: int = 0  # torch threads on CPU (0: default)


@dataclass
class BaseRecipe:
    seed: int = 0
    num_clips: int = 40000  # clips at R
    num_clips_hr: int = 8000  # clips at 1.5R
    batch_size: int = 128
    batch_size_hr: int = 64
    hr_fraction: float = 0.2  # share of steps at 1.5R
    lr: float = 3e-4
    text_lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_steps: int = 20000
    max_minutes: float = 6.0
    caption_dropout: float = 0.1
    flow_shift: float = 3.0
    pad_lengths: list[int] = field(default_factory=lambda: [40, 40, 40, 226, 512])
    eval_every: int = 2000
    eval_prompts: int = 32
    log_every: int = 100
    ema_decay: float = 0.999
    lr_decay_frac: float = 0.0  # decay the lr linearly to 5% over this final share of the time budget (a cool-down)
    grow_layers: int = 0  # deepen the loaded (or built) transformer to this many blocks first; new ones start as identity


@dataclass
class RefinerRecipe:
    seed: int = 0
    num_clips: int = 3000
    batch_size: int = 32
    lr: float = 3e-4
    max_steps: int = 4000
    max_minutes: float = 3.0
    latent_noise: float = 0.1  # std of the latent-level degradation
    lr_decay_frac: float = 0.0  # decay the lr linearly to 5% over this final share of the time budget
    log_every: int = 100


_RECIPES = {"vae": VAERecipe, "base": BaseRecipe, "refiner": RefinerRecipe}


def load_recipe(kind: str, path: str | os.PathLike | None = None, **overrides):
    """Load a recipe of ``kind`` ('vae', 'base', 'refiner') from YAML, then apply overrides (None skipped)."""
    if kind not in _RECIPES:
        raise ValueError(f"kind must be one of {sorted(_RECIPES)}, got {kind!r}")
    cls = _RECIPES[kind]
    values: dict = {}
    if path is not None:
        import yaml

        with open(path) as f:
            values = yaml.safe_load(f) or {}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown keys in {path}: {sorted(unknown)}; allowed: {sorted(names)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(f"unknown {kind} recipe fields {sorted(unknown)}; allowed: {sorted(names)}")
    values.update(overrides)
    return cls(**values)


def wallclock_decay(elapsed: float, budget: float, frac: float) -> float:
    """Learning-rate factor: 1.0, then linear to 5% over the final ``frac`` of a wall-clock ``budget``.

    The runs are bounded by time (a device command may take 10 minutes), not by steps, so the cool-down
    is placed by elapsed seconds. ``frac <= 0`` disables it.
    """
    if frac <= 0:
        return 1.0
    left = (budget - elapsed) / (frac * budget)
    return float(min(1.0, max(0.05, left)))


def atomic_save_dir(final: str | os.PathLike, writer) -> Path:
    """Call ``writer(tmp_dir)`` and move the result to ``final`` (replacing it) only once complete."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        writer(tmp)
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        if final.exists():
            old = final.with_name(final.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_json(path: str | os.PathLike, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)
