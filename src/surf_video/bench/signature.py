"""Signature-retention benchmark: does a fast sampler keep the base model's layout, semantics and motion?

For every (prompt, seed) the benchmark makes a *reference* (the base model at its optimal size R with all N
steps) and runs the *methods* from the same initial noise:

- SURF: k of N steps at R, then the rest at the preview size, for every ``k`` in ``k_values`` and every
  re-noise form in ``forms`` (``'flow'``, ``'paper'``, ``'snr'``), and ``switch_step='auto'`` per form;
  ``k = 0`` is direct low-resolution inference and ``k = N`` is the reference itself (both shared by the
  forms: no switch happens, so the form does not matter);
- fewer steps at R (``fewer_steps``, e.g. 12 and 20 of 40: 30 % and 50 %);
- a high-low-high schedule in the style of Bottleneck Sampling (:func:`run_high_low_high`).

Noise: one base-size latent per (prompt, seed), drawn from ``torch.Generator().manual_seed(item_seed)``,
goes to every method that starts at R. Direct low-resolution inference needs noise at the preview size: it
is drawn from the same item seed at that size (so it is *not* a resize of the base noise). The fresh noise
of a switch comes from a generator with the same item seed too, so 'flow' and 'paper' re-noise with the same
draw.

Scoring (:mod:`surf_video.bench.metrics`) happens at the preview size P: previews are decoded at P, videos
at R are decoded at R and area-downsized to P; the reference is scored likewise. Layout: object-mask IoU
per frame (per caption object, from the world evaluator), foreground IoU, SSIM. Semantics: agreement of
the evaluator's per-object attributes with the reference's, and adherence to the prompt. Motion: centroid
track error in pixels at P and direction agreement. Cost: transformer forward passes per video (CFG
counted), analytic FLOPs (:func:`transformer_flops`) and measured denoising seconds per video.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..mini.config import GUIDANCE_SCALE
from . import metrics as M
from .signature_sampling import (  # noqa: F401  (re-exported: the samplers the benchmark drives)
    _generators,
    _item_seed,
    _noise,
    run_branched,
    run_high_low_high,
)
from .signature_scoring import (  # noqa: F401  (re-exported: tests and callers use them from here)
    SUMMARY_METRICS,
    _decode_many,
    _decode_uint8,
    _flops_per_video,
    _latent_scores,
    _nanmean,
    _pool,
    _scene,
    _score,
    _score_sample,
    _tokens,
    summarize,
    transformer_flops,
)

logger = logging.getLogger(__name__)

__all__ = [
    "SignatureConfig",
    "Method",
    "build_methods",
    "make_prompts",
    "load_prompts",
    "transformer_flops",
    "run_high_low_high",
    "run_branched",
    "run_signature",
    "summarize",
    "cpu_timing",
    "QUICK_OVERRIDES",
]

#: settings of ``--quick`` (CI-sized runs): 4 prompts, one seed, the SURF default and the sweep's ends
QUICK_OVERRIDES = {"num_prompts": 4, "seeds": (0,)}


@dataclass
class SignatureConfig:
    """What the benchmark runs. Sizes are square pixel sizes.

    Attributes:
        num_steps: N, steps of the reference (and of every SURF run).
        surf_k: the SURF default switch step (k of N).
        k_values: the switch-step sweep (0 = direct low-resolution inference, N = the reference).
        forms: re-noise forms of SURF's rows.
        sweep_forms: the forms that get the whole k sweep (``None``: every form); the others run at
            ``surf_k`` only. The default run sweeps 'flow' (issue 7's question); ``None`` is issue 11's
            sweep of every form.
        auto: also run ``switch_step='auto'`` for every form (one video at a time, since the pipeline
            decides the switch for a whole batch).
        auto_tol, min_switch_step, max_switch_step: ``'auto'``'s arguments (pipeline defaults).
        fewer_steps: step counts of the "fewer steps at R" baselines.
        hlh: ``(k1, k2)`` of the high-low-high schedule: steps ``[0, k1)`` at R, ``[k1, k2)`` at P,
            ``[k2, N)`` at R again (``None`` skips it).
        base_size, preview_size: R and P in pixels.
        num_frames: frames per clip.
        guidance_scale, max_sequence_length: the base model's sampling settings.
        resize_mode: latent downscale of the switch.
        batch_size: videos per pipeline call.
        share_prefix: run the reference and every SURF method from one trajectory (:func:`run_branched`;
            equal to separate SURFPipeline calls, about half the compute); False: one SURFPipeline call per
            method (``'auto'`` one video per call).
        decode_batch: videos per VAE decode call (all methods of a batch are decoded together).
        seeds: seeds per prompt.
        num_prompts: use the first this many prompts (``None``: all).
        refine_size: also refine every SURF method's preview to this square size with the pipeline's refiner
            (``<name>+refiner`` rows, :mod:`surf_video.bench.signature_refine`); ``None``: no refined rows.
        refine_steps: flow-map steps of the refiner.
        accelerations: ``reference+A`` and ``surf_flow_k<surf_k>+A`` rows per acceleration A
            (``'fbcache'``, ``'taylorseer'``, ``'compile'``, with optional ``:param`` s; see
            :mod:`surf_video.bench.signature_accel`).
    """

    num_steps: int = 40
    surf_k: int = 10
    k_values: tuple[int, ...] = (0, 5, 10, 20, 30, 40)
    forms: tuple[str, ...] = ("flow", "paper", "snr")
    sweep_forms: tuple[str, ...] | None = None
    auto: bool = True
    auto_tol: float = 0.05
    min_switch_step: int = 2
    max_switch_step: int | None = None
    fewer_steps: tuple[int, ...] = (12, 20)
    hlh: tuple[int, int] | None = (4, 34)
    base_size: int = 128
    preview_size: int = 64
    num_frames: int = 17
    guidance_scale: float = GUIDANCE_SCALE  # SURF-Mini's sampling default (3.0 since v6; 5.0 before)
    max_sequence_length: int = 40
    resize_mode: str = "area"
    batch_size: int = 8
    share_prefix: bool = True
    decode_batch: int = 16
    seeds: tuple[int, ...] = (0,)
    num_prompts: int | None = None
    refine_size: int | None = None
    refine_steps: int = 10
    accelerations: tuple[str, ...] = ()

    def check(self) -> None:
        n = self.num_steps
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"num_steps must be an integer >= 1, got {n!r}")
        if any(not 0 <= k <= n for k in self.k_values) or not 0 <= self.surf_k <= n:
            raise ValueError(f"k_values and surf_k must lie in [0, num_steps={n}], got {self.k_values}, {self.surf_k}")
        if any(not 1 <= s <= n for s in self.fewer_steps):
            raise ValueError(f"fewer_steps must lie in [1, num_steps={n}], got {self.fewer_steps}")
        if self.hlh is not None and not 0 < self.hlh[0] <= self.hlh[1] < n:
            raise ValueError(f"hlh=(k1, k2) needs 0 < k1 <= k2 < num_steps={n}, got {self.hlh}")
        if self.preview_size > self.base_size:
            raise ValueError(f"preview_size ({self.preview_size}) must not exceed base_size ({self.base_size})")
        bad = [f for f in self.forms if f not in ("flow", "paper", "snr")]
        if bad:
            raise ValueError(f"forms must be among 'flow', 'paper', 'snr', got {bad}")
        if self.sweep_forms is not None and not set(self.sweep_forms) <= set(self.forms):
            raise ValueError(f"sweep_forms {list(self.sweep_forms)} must be among forms {list(self.forms)}")
        if self.batch_size < 1 or not self.seeds:
            raise ValueError("batch_size must be >= 1 and seeds non-empty")
        if not isinstance(self.refine_steps, int) or self.refine_steps < 1:
            raise ValueError(f"refine_steps must be an integer >= 1, got {self.refine_steps!r}")
        from .signature_accel import parse_accelerations

        parse_accelerations(self.accelerations)  # raises ValueError naming a bad item


@dataclass(frozen=True)
class Method:
    """One sampler configuration of the benchmark.

    Attributes:
        name: unique id, e.g. ``'surf_snr_k10'``.
        kind: ``'steps'`` (plain sampling at R with ``steps`` steps), ``'surf'`` (switch at ``k`` or
            ``'auto'``), ``'direct'`` (all N steps at P), ``'hlh'``, ``'refined'`` (``source`` refined to
            ``refine_size``) or ``'accel'`` (``steps`` at R, or SURF at ``k``, with acceleration ``accel``).
        form: re-noise form for ``'surf'``.
        k: switch step for ``'surf'``.
        steps: step count for ``'steps'``.
        at_preview: whether its output is at the preview size.
        source: the method a ``'refined'`` one refines.
        accel: the acceleration of an ``'accel'`` method.
    """

    name: str
    kind: str
    form: str | None = None
    k: int | str | None = None
    steps: int | None = None
    at_preview: bool = True
    source: str | None = None
    accel: str | None = None


def build_methods(cfg: SignatureConfig) -> list[Method]:
    """The methods of a config, the reference first."""
    n = cfg.num_steps
    methods = [Method("reference", "steps", steps=n, at_preview=False)]
    if 0 in cfg.k_values or cfg.surf_k == 0:
        methods.append(Method("direct_lowres", "direct"))
    ks = sorted({k for k in cfg.k_values if 0 < k < n} | ({cfg.surf_k} if 0 < cfg.surf_k < n else set()))
    only_k = [k for k in ks if k == cfg.surf_k]
    for form in cfg.forms:
        swept = cfg.sweep_forms is None or form in cfg.sweep_forms
        methods += [Method(f"surf_{form}_k{k}", "surf", form=form, k=k) for k in (ks if swept else only_k)]
        if cfg.auto:
            methods.append(Method(f"surf_{form}_auto", "surf", form=form, k="auto"))
    methods += [Method(f"steps{s}", "steps", steps=s, at_preview=False) for s in cfg.fewer_steps if s != n]
    if cfg.hlh is not None:
        methods.append(Method(f"hlh_{cfg.hlh[0]}_{cfg.hlh[1]}", "hlh", at_preview=False))
    return methods + _extra_methods(cfg, methods)


def _extra_methods(cfg: SignatureConfig, methods: list[Method]) -> list[Method]:
    """Refined rows of the SURF methods in ``methods`` and acceleration rows (after every plain one)."""
    from .signature_accel import accel_methods
    from .signature_refine import refined_methods

    return (refined_methods(methods) if cfg.refine_size is not None else []) + accel_methods(cfg)


def make_prompts(n: int, seed_base: int = 20_000_000, max_objects: int = 3) -> list[str]:
    """``n`` captions of world scenes ``seed_base + i`` (above the training and evaluation seed ranges)."""
    from ..world import sample_scene

    return [sample_scene(np.random.default_rng(seed_base + i), max_objects=max_objects).caption for i in range(n)]


def load_prompts(path: str | Path) -> list[str]:
    """One caption per line; blank lines and lines starting with ``#`` are skipped. Each must parse."""
    from ..world import parse_caption

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"prompts: no file {p}")
    prompts = [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not prompts:
        raise ValueError(f"prompts: {p} holds no caption")
    for c in prompts:
        parse_caption(c)  # raises ValueError naming the bad caption
    return prompts


# ---- sampling --------------------------------------------------------------------------------------------
def _run_method(surf, m: Method, cfg: SignatureConfig, prompts: list[str], item_seeds: list[int]) -> dict:
    """Runs one method on a batch; returns final latents and per-video cost (forwards, FLOPs, seconds)."""
    a = surf.adapter
    sf = a.spatial_factor
    R, P, N = cfg.base_size, cfg.preview_size, cfg.num_steps
    c, f = a.latent_channels, (cfg.num_frames - 1) // a.temporal_factor + 1
    base_noise = _base_noise(surf, cfg, item_seeds)
    common = dict(negative_prompt=None, num_frames=cfg.num_frames, guidance_scale=cfg.guidance_scale,
                  output_type="latent", max_sequence_length=cfg.max_sequence_length, base_height=R, base_width=R,
                  preview_height=P, preview_width=P, resize_mode=cfg.resize_mode)
    b = len(prompts)
    if m.kind == "hlh":
        z, info = run_high_low_high(surf, prompts, base_noise, _generators(item_seeds), num_steps=N, k1=cfg.hlh[0],
                                    k2=cfg.hlh[1], preview_size=P, guidance_scale=cfg.guidance_scale,
                                    max_sequence_length=cfg.max_sequence_length, resize_mode=cfg.resize_mode)
        evals = info["evals"]
        return {"latents": z, "evals": evals, "seconds": info["seconds"] / b, "switch": [list(cfg.hlh)] * b}
    if m.kind == "surf" and m.k == "auto":  # one video per call: 'auto' decides for the whole batch
        outs = [_run_method(surf, Method(m.name, "surf_single", m.form, "auto"), cfg, [p], [s])
                for p, s in zip(prompts, item_seeds)]
        # a list: a video that never settles keeps the base size, the others end at the preview size
        return {"latents": [o["latents"][0] for o in outs], "evals": [o["evals"] for o in outs],
                "seconds": float(np.mean([o["seconds"] for o in outs])), "switch": [o["switch"][0] for o in outs]}
    t0 = time.perf_counter()
    if m.kind == "steps":
        out = surf(prompts, num_inference_steps=m.steps, switch_step=m.steps, latents=base_noise, **common)
        stage_size = ["base"]
    elif m.kind == "direct":  # noise at the preview size from the same item seed (see module docstring)
        low = _noise(item_seeds, (c, f, P // sf, P // sf))
        out = surf(prompts, num_inference_steps=N, switch_step=0, latents=low, **common)
        stage_size = ["preview"]
    else:
        out = surf(prompts, num_inference_steps=N, switch_step=m.k, latents=base_noise, renoise=m.form,
                   generator=_generators(item_seeds), auto_switch_tol=cfg.auto_tol,
                   min_switch_step=cfg.min_switch_step, max_switch_step=cfg.max_switch_step, **common)
        stage_size = ["base", "preview"]
    seconds = sum(v for k, v in out.timings.items() if k.startswith("stage") or k == "text")
    if a.device.type == "cuda":
        torch.cuda.synchronize()
    evals = {"base": 0, "preview": 0}
    for i, (key, n) in enumerate(sorted(out.num_evaluations.items())):
        if key.startswith("stage"):
            evals[stage_size[min(i, len(stage_size) - 1)]] += n
    logger.debug("%s: %.2fs wall for %d videos", m.name, time.perf_counter() - t0, b)
    switch = [out.switch_steps] * b
    return {"latents": out.latents, "evals": evals, "seconds": seconds / b, "switch": switch}


def _run_branched(surf, all_methods: list[Method], cfg: SignatureConfig, prompts: list[str],
                  item_seeds: list[int]) -> dict:
    """The reference and every SURF method of a batch from one shared trajectory (:func:`run_branched`)."""
    surf_ms = [m for m in all_methods if m.kind == "surf"]
    br = run_branched(
        surf, prompts, _base_noise(surf, cfg, item_seeds), item_seeds, num_steps=cfg.num_steps,
        preview_size=cfg.preview_size, guidance_scale=cfg.guidance_scale, max_sequence_length=cfg.max_sequence_length,
        branches=[(m.form, m.k) for m in surf_ms if m.k != "auto"],
        auto_forms=tuple(m.form for m in surf_ms if m.k == "auto"), auto_tol=cfg.auto_tol,
        min_switch_step=cfg.min_switch_step, max_switch_step=cfg.max_switch_step, resize_mode=cfg.resize_mode)
    runs = {"reference": br["reference"]}
    runs.update({m.name: br[(m.form, m.k)] for m in surf_ms})
    return runs


def _base_noise(surf, cfg: SignatureConfig, item_seeds: list[int]) -> torch.Tensor:
    a = surf.adapter
    sf = a.spatial_factor
    f = (cfg.num_frames - 1) // a.temporal_factor + 1
    return _noise(item_seeds, (a.latent_channels, f, cfg.base_size // sf, cfg.base_size // sf))


@torch.no_grad()
def run_signature(surf, prompts: list[str], cfg: SignatureConfig | None = None, *, methods: list[str] | None = None,
                  keep_examples: int = 2, progress: bool = True, workers: int = 0, max_minutes: float | None = None,
                  on_batch=None) -> dict:
    """Runs the benchmark.

    Args:
        surf: a ``SURFPipeline`` around a Wan base (its progress bar is switched off here).
        prompts: captions in the world's grammar.
        cfg: settings (default :class:`SignatureConfig`).
        methods: run only these method names (the reference always runs).
        keep_examples: keep the middle frame of this many samples per method for a figure.
        progress: show a tqdm bar over batches.
        workers: score in this many worker processes (0 or 1: in this process).
        max_minutes: stop after the batch that passes this wall-clock budget (``complete`` is then False).
        on_batch: called with the result so far after every batch (e.g. to write partial results).

    Returns:
        ``{"config", "methods", "samples": [{"prompt", "seed", "method": {name: metrics+cost}}],
        "summary": {name: {metric: {"mean", "ci95", "n"}}}, "examples", "flops_per_forward", "seconds"}``.
    """
    cfg = cfg or SignatureConfig()
    cfg.check()
    if surf.adapter.name != "wan":
        raise ValueError("run_signature: the benchmark drives Wan bases (SURF-Mini); got a " + surf.adapter.name)
    prompts = list(prompts)[: cfg.num_prompts] if cfg.num_prompts else list(prompts)
    if not prompts:
        raise ValueError("prompts: none given")
    all_methods = build_methods(cfg)
    if methods is not None:
        unknown = set(methods) - {m.name for m in all_methods}
        if unknown:
            raise ValueError(f"methods: unknown {sorted(unknown)}; known: {[m.name for m in all_methods]}")
        # the filter picks plain rows (a named refined row brings its source); extra rows follow their options
        want = set(methods) | {m.source for m in all_methods if m.kind == "refined" and m.name in methods}
        kept = [m for m in all_methods if m.kind not in ("refined", "accel") and (m.name == "reference" or m.name in want)]
        all_methods = kept + _extra_methods(cfg, kept)
    if cfg.refine_size is not None:
        from .signature_refine import check_refiner

        check_refiner(surf, cfg)
    surf.set_progress_bar_config(disable=True)
    a = surf.adapter
    tcfg = a.transformer.config
    accel_errors: dict[str, list[str]] = {}
    items = [(p, s, i) for s in cfg.seeds for i, p in enumerate(prompts)]
    samples, examples = [], {}
    t_start = time.perf_counter()
    P = cfg.preview_size
    batches = [items[i : i + cfg.batch_size] for i in range(0, len(items), cfg.batch_size)]
    pool = _pool(workers)
    try:
        for batch in tqdm(batches, desc="signature", disable=not progress):
            caps = [p for p, _, _ in batch]
            seeds = [_item_seed(s, i) for _, s, i in batch]
            recs = [{"prompt": p, "seed": s, "prompt_index": i, "methods": {}} for p, s, i in batch]
            videos: dict[str, np.ndarray] = {}
            costs: dict[str, dict] = {}
            runs = _run_branched(surf, all_methods, cfg, caps, seeds) if cfg.share_prefix else {}
            plain = [m for m in all_methods if m.kind not in ("refined", "accel")]
            for m in plain:  # sample every method first, decode all at once, then score on CPU workers
                costs[m.name] = runs.get(m.name) or _run_method(surf, m, cfg, caps, seeds)
            costs.update(_extra_runs(surf, all_methods, costs, cfg, caps, seeds, accel_errors))
            done = [m for m in all_methods if m.name in costs]
            flat = [(m.name, j, costs[m.name]["latents"][j]) for m in done for j in range(len(batch))]
            # plain rows decoded apart from the extra ones: the same decode batches as a run without extras
            n_plain = len(plain) * len(batch)
            decoded = (_decode_many(surf, [lat for _, _, lat in flat[:n_plain]], cfg.decode_batch)
                       + _decode_many(surf, [lat for _, _, lat in flat[n_plain:]], cfg.decode_batch))
            for (name, j, _), v in zip(flat, decoded):
                if name == "reference":
                    videos.setdefault("reference_full", [None] * len(batch))[j] = v
                videos.setdefault(name, [None] * len(batch))[j] = M.resize_video(v, P) if v.shape[1] != P else v
            videos = {k: np.stack(v) for k, v in videos.items()}
            tasks = [(caps[j], {k: v[j] for k, v in videos.items()}) for j in range(len(batch))]
            scored = list(pool.map(_score_sample, tasks)) if pool is not None else [_score_sample(t) for t in tasks]
            for j, (r, (full_adherence, scores)) in enumerate(zip(recs, scored)):
                r["reference_full_size"] = full_adherence
                for m in done:
                    run = costs[m.name]
                    ev = run["evals"][j] if isinstance(run["evals"], list) else run["evals"]
                    flops = run["flops"][j] if "flops" in run else _flops_per_video(tcfg, ev, cfg, a.spatial_factor,
                                                                                    a.temporal_factor)
                    scores[m.name].update(
                        **_latent_scores(run["latents"][j], costs["reference"]["latents"][j], cfg.preview_size,
                                         a.spatial_factor),
                        forwards=float(sum(ev.values())), evals=ev, flops=flops,
                        seconds=run["seconds"], switch=_jsonable(run["switch"][j]) if m.kind != "steps" else None,
                        **{k: run[k] for k in ("compute_share", "block_calls", "block_calls_skipped") if k in run})
                    if len(samples) + j < keep_examples:
                        v = videos[m.name][j]
                        examples.setdefault(m.name, []).append(v[v.shape[0] // 2])
                r["methods"] = scores
            samples += recs
            if on_batch is not None:
                on_batch(_result(samples, examples, all_methods, cfg, surf, t_start, len(items), accel_errors))
            if max_minutes is not None and time.perf_counter() - t_start > 60 * max_minutes:
                logger.warning("signature: time budget of %.1f min spent after %d of %d videos; stopping",
                               max_minutes, len(samples), len(items))
                break
    finally:
        if pool is not None:
            pool.shutdown()
    return _result(samples, examples, all_methods, cfg, surf, t_start, len(items), accel_errors)


def _extra_runs(surf, all_methods, costs, cfg, caps, seeds, accel_errors) -> dict:
    """Refined rows (from the plain runs in ``costs``) and acceleration rows of one batch."""
    a, tcfg = surf.adapter, surf.adapter.transformer.config
    out = {}
    for m in all_methods:
        if m.kind == "refined":
            from .signature_refine import run_refined

            src = costs[m.source]
            evs = src["evals"] if isinstance(src["evals"], list) else [src["evals"]] * len(caps)
            src_flops = [_flops_per_video(tcfg, ev, cfg, a.spatial_factor, a.temporal_factor) for ev in evs]
            out[m.name] = run_refined(surf, m, src, src_flops, cfg, caps)
    if any(m.kind == "accel" for m in all_methods):
        from .signature_accel import run_accelerated

        runs, info = run_accelerated(surf, all_methods, cfg, caps, seeds)
        out.update(runs)
        for name, e in info.items():
            accel_errors.setdefault(name, []).append(e["error"])
    return out


def _result(samples, examples, all_methods, cfg, surf, t_start, planned, accel_errors=None) -> dict:
    a = surf.adapter
    tcfg = a.transformer.config
    seconds = time.perf_counter() - t_start
    result = {
        "config": _jsonable(asdict(cfg)),
        "methods": [_jsonable(asdict(m)) for m in all_methods],
        "num_samples": len(samples),
        "samples": samples,
        "flops_per_forward": {
            "base": transformer_flops(tcfg, _tokens(cfg, a, cfg.base_size), cfg.max_sequence_length),
            "preview": transformer_flops(tcfg, _tokens(cfg, a, cfg.preview_size), cfg.max_sequence_length),
        },
        "seconds_total": seconds,
        "device": str(a.device),
        "torch_threads": torch.get_num_threads(),
        "planned_samples": planned,
        "complete": len(samples) == planned,
    }
    if cfg.refine_size is not None:
        from .signature_refine import refiner_flops_per_forward

        result["refiner"] = {"config": _jsonable({k: v for k, v in dict(surf.refiner.config).items()
                                                  if not k.startswith("_")}),
                             "size": cfg.refine_size, "steps": cfg.refine_steps,
                             "flops_per_forward": refiner_flops_per_forward(surf, cfg)}
    if cfg.accelerations:
        from .signature_accel import parse_accelerations

        result["accelerations"] = {s.name: {"params": _jsonable(s.params), "errors": (accel_errors or {}).get(s.name, [])}
                                   for s in parse_accelerations(cfg.accelerations)}
    result["summary"] = summarize(samples, [m.name for m in all_methods])
    result["examples"] = {k: np.stack(v) for k, v in examples.items()}
    return result


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


@torch.no_grad()
def cpu_timing(surf, prompts: list[str], cfg: SignatureConfig, method_names: list[str] | None = None, *,
               threads: int = 2, num_prompts: int = 4) -> dict:
    """Measured CPU seconds per video of every method's denoising (text encoding included, decode excluded).

    Runs each method once on the first ``num_prompts`` prompts (seed 0) in one batch on the CPU with
    ``threads`` torch threads (``'auto'`` one video at a time, as in the benchmark), after one warm-up
    forward. The pipeline is moved to the CPU and left there.

    Returns:
        ``{"threads", "num_prompts", "seconds_per_video": {name: s}, "projected_minutes": m}`` where ``m`` is the
        denoising time of the whole configured run (all prompts x seeds) projected from these figures.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        surf.base.to("cpu")
        surf.set_progress_bar_config(disable=True)
        methods = [m for m in build_methods(cfg) if m.kind not in ("refined", "accel")
                   and (method_names is None or m.name in method_names or m.name == "reference")]
        caps = list(prompts)[:num_prompts]
        seeds = [_item_seed(0, i) for i in range(len(caps))]
        small = replace(cfg, num_steps=1, k_values=(0, 1), surf_k=1, fewer_steps=(1,), hlh=None)
        _run_method(surf, Method("warmup", "steps", steps=1, at_preview=False), small, caps[:1], seeds[:1])
        out = {m.name: _run_method(surf, m, cfg, caps, seeds)["seconds"] for m in methods}
    finally:
        torch.set_num_threads(old)
    n_videos = (cfg.num_prompts or len(prompts)) * len(cfg.seeds)
    return {"threads": threads, "num_prompts": len(caps), "seconds_per_video": out,
            "projected_minutes": sum(out.values()) * min(n_videos, len(prompts) * len(cfg.seeds)) / 60.0}

