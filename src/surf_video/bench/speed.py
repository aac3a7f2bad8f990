"""Speed benchmark: SURF against its base model at full size, random bf16 weights, on one GPU.

Speed does not depend on the weights, so every network is built from its published config with random
weights directly on the device (no download). The runs go through the code users run: the baseline is the
diffusers pipeline's own ``__call__`` (``WanPipeline`` / ``HunyuanVideoPipeline``); SURF is
:class:`~surf_video.pipelines.SURFPipeline` (preview stages, then the refiner's flow-map sampler).
Text conditioning: Wan gets random ``prompt_embeds`` ``[1, 512, 4096]``; HunyuanVideo encodes a prompt with
small random LLaMA (hidden 4096) / CLIP (hidden 768) encoders, i.e. the pipeline's own ``encode_prompt`` path.

Every transformer / refiner forward is timed with CUDA events from module hooks. A stage that would take too
long runs only ``timed_steps`` steps; its per-forward time (after dropping the first, warm-up, forward at a
size seen for the first time) is multiplied by the full recipe's forwards and the result says
``extrapolated``. FLOPs come from :mod:`surf_video.bench.flops`.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass

import torch

from . import flops as F
from .speed_models import (ARCHS, HUNYUAN13B, HUNYUAN_TINY, WAN1_3B, WAN14B, WAN_TINY, _init_on,  # noqa: F401
                           build_pipeline, build_refiner, build_transformer)
from .speed_profile import profile_forward, profile_slow_stages

__all__ = [
    "ARCHS", "TARGETS", "SpeedConfig", "ForwardTimer", "build_transformer", "build_refiner", "build_pipeline",
    "measure_matmul_peak", "time_vae_decode", "run_speed", "run_refiner_speed", "profile_forward",
]

#: target name -> (height, width); 1080p is 1088x1920, the nearest size Wan's VAE x patch (16) divides
TARGETS = {"720p": (720, 1280), "1080p": (1088, 1920), "tiny": (64, 96)}
_RECIPES = {  # family -> frames, base size, preview size, text length, guidance, CFG passes per step
    "wan": dict(frames=81, base=(480, 832), preview=(240, 416), text_len=512, guidance=5.0, passes=2),
    "hunyuan": dict(frames=129, base=(544, 960), preview=(272, 480), text_len=256, guidance=6.0, passes=1),
}
PROMPT = "a red circle moving left on a blue background"


@dataclass
class SpeedConfig:
    """One benchmark run (one model, one or more targets); see ``surf bench speed --help``."""

    model: str = "wan14b"
    targets: tuple[str, ...] = ("720p",)
    steps: int = 50  # baseline steps
    surf_steps: int = 40  # SURF preview steps: switch_step at the base size, the rest at the preview size
    switch_step: int = 10
    refine_steps: int = 10
    timed_steps: int | None = None  # None: run every step of every stage
    num_frames: int | None = None  # None: the family's recipe (81 Wan, 129 HunyuanVideo)
    base_size: tuple[int, int] | None = None
    preview_size: tuple[int, int] | None = None
    target_size: tuple[int, int] | None = None  # overrides TARGETS (tests)
    text_len: int | None = None
    windows: tuple = (7, 3, None)  # refiner-only runs: temporal windows to compare (None = full attention)
    compile: bool = False
    batch_cfg: bool = False
    attention_backend: str | None = None
    quantize: str | None = None  # "fp8": torchao float8 linears in base and refiner (pipelines.accel)
    cache: str | None = None  # "taylorseer[:INTERVAL[:WARMUP]]" / "fbcache[:THRESHOLD]": SURF's base stages only
    eager_baseline: bool = False  # also time the baseline before any acceleration, in the same process
    accel_baseline: bool = True  # time the baseline with the accelerations (False: eager_baseline only)
    vae_decode: bool = True
    profile: bool = False
    device: str = "cuda"
    dtype: str = "bfloat16"
    seed: int = 0
    command: str = ""
    parallel: str | None = None  # context parallelism under torchrun: "ulysses" or "ring" (refiner: Ulysses)
    parallel_degree: int | None = None  # default: the number of processes


# ---------------------------------------------------------------------------------------------- timing
class ForwardTimer:
    """Times every forward of the modules it is attached to (CUDA events; host clock on CPU).

    ``records`` holds ``(phase, module name, input shape, seconds)``; ``phase`` is whatever the caller set.
    """

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"
        self.records: list[tuple[str, str, tuple, float]] = []
        self.phase = ""
        self.inputs: dict[tuple, tuple] = {}  # (name, shape) -> (args, kwargs) of one call, for profiling
        self._open: dict[str, tuple] = {}
        self._handles = []

    def attach(self, module: torch.nn.Module, name: str) -> None:
        def pre(mod, args, kwargs):
            hs = kwargs.get("hidden_states", args[0] if args else None)
            shape = tuple(hs.shape)
            self.inputs.setdefault((name, shape), (args, kwargs))
            if self.cuda:
                start = torch.cuda.Event(enable_timing=True)
                start.record()
                self._open[name] = (shape, start)
            else:
                self._open[name] = (shape, time.perf_counter())

        def post(mod, args, kwargs, out):
            shape, start = self._open.pop(name)
            if self.cuda:
                end = torch.cuda.Event(enable_timing=True)
                end.record()
                end.synchronize()
                sec = start.elapsed_time(end) / 1000.0
            else:
                sec = time.perf_counter() - start
            self.records.append((self.phase, name, shape, sec))

        self._handles += [module.register_forward_pre_hook(pre, with_kwargs=True),
                          module.register_forward_hook(post, with_kwargs=True)]

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def sync(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def forwards(self, phase: str, name: str, shape: tuple | None = None) -> list[float]:
        return [s for p, n, sh, s in self.records if p == phase and n == name and (shape is None or sh == shape)]

    def seen_before(self, phase: str, name: str, shape: tuple) -> bool:
        for p, n, sh, _ in self.records:
            if p == phase:
                return False
            if n == name and sh == shape:
                return True
        return False


def _stage(timer: ForwardTimer, phase: str, name: str, shape: tuple, wall: float, steps_run: int, full_steps: int,
           passes: int, flops_per_forward: int, peak: float | None) -> dict:
    """Per-stage result: per-forward time (warm-up dropped), extrapolated to the full recipe."""
    fw = timer.forwards(phase, name, shape)
    if not fw:
        raise RuntimeError(f"no {name} forward at {shape} was timed in phase {phase!r}")
    warm = timer.seen_before(phase, name, shape)
    timed = fw if warm or len(fw) < 2 else fw[1:]
    note_warm = "warm (size seen earlier)" if warm else ("first forward dropped as warm-up" if len(fw) >= 2
                                                          else "cold: no warm-up forward at this size")
    per_fwd = statistics.mean(timed)
    overhead = max(0.0, wall - sum(fw)) / max(steps_run, 1)  # scheduler / resize work between forwards
    full_fwd = full_steps * passes
    seconds = per_fwd * full_fwd + overhead * full_steps
    extrap = len(timed) < full_fwd
    tflops = flops_per_forward / per_fwd / 1e12
    return {
        "module": name, "seconds": seconds, "steps": full_steps, "forwards": full_fwd, "latent_shape": list(shape),
        "sec_per_forward": per_fwd, "forward_times": fw, "overhead_per_step": overhead,
        "steps_run": steps_run, "timed_forwards": len(timed), "extrapolated": extrap,
        "note": (f"extrapolated from {len(timed)} timed forwards ({steps_run} steps run; {note_warm}) "
                 f"to {full_fwd} forwards" if extrap else f"measured: all {full_fwd} forwards ({note_warm})"),
        "flops_per_forward": flops_per_forward, "flops": flops_per_forward * full_fwd,
        "tflops_per_s": tflops, "fraction_of_peak": (tflops / peak) if peak else None,
    }


def measure_matmul_peak(device="cuda", n: int = 8192, iters: int = 10) -> float | None:
    """bf16 ``n x n x n`` matmul rate in TFLOP/s on random data (None on CPU)."""
    if torch.device(device).type != "cuda":
        return None
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        a @ b
    end.record()
    end.synchronize()
    return 2 * n**3 * iters / (start.elapsed_time(end) / 1000) / 1e12


def time_vae_decode(family: str, height: int, width: int, num_frames: int, device, dtype) -> dict:
    """One decode of the full-size VAE (random weights, built from its config) at the output size."""
    from diffusers import AutoencoderKLHunyuanVideo, AutoencoderKLWan

    with _init_on(device, dtype):
        vae = (AutoencoderKLWan() if family == "wan" else AutoencoderKLHunyuanVideo()).eval().requires_grad_(False)
    lf = (num_frames - 1) // 4 + 1
    z = torch.randn(1, 16, lf, height // 8, width // 8, device=device, dtype=dtype)
    tiling = family != "wan"  # HunyuanVideo's decoder needs tiling at 720p (its pipeline docs enable it)
    if tiling:
        vae.enable_tiling()
    timer = ForwardTimer(device)
    with torch.no_grad():
        vae.decode(z[:, :, :2, :32, :32])  # warm-up
        t0 = timer.sync()
        try:
            vae.decode(z)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            vae.enable_tiling()
            tiling = True
            t0 = timer.sync()
            vae.decode(z)
        sec = timer.sync() - t0
    params = sum(p.numel() for p in vae.parameters())
    del vae
    return {"seconds": sec, "tiling": tiling, "dtype": str(dtype).replace("torch.", ""), "params": params,
            "latent_shape": list(z.shape), "note": "one decode (random weights, full-size config) after a small warm-up"}


# ---------------------------------------------------------------------------------------------- runs
def _steps_run(full: int, timed: int | None, passes: int) -> int:
    if timed is None:
        return full
    # a stage of one forward per step runs two, so that a warm-up forward can be dropped
    return min(full, max(timed, math.ceil(2 / passes)))


def _env(cfg: SpeedConfig, peak) -> dict:
    import os
    import platform
    import subprocess

    import diffusers

    # A copy of the tree without .git (the GPU machine) gets the commit from the caller.
    commit = os.environ.get("SURF_GIT_COMMIT", "")
    if not commit:
        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
            commit = out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            commit = ""
    cuda = torch.device(cfg.device).type == "cuda"
    return {
        "gpu": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "torch": torch.__version__, "diffusers": diffusers.__version__, "cuda": torch.version.cuda,
        "git_commit": commit or None, "bf16_matmul_peak_tflops": peak, "command": cfg.command,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _batched_cfg(adapter) -> None:
    """Wan only: both CFG passes as one batch of 2 (same math; the 'go past the paper' row)."""
    orig = adapter.predict

    def predict(latents, t, cond, *, step_index, sigma, num_steps, attention_kwargs=None):
        if not cond.do_cfg:
            return orig(latents, t, cond, step_index=step_index, sigma=sigma, num_steps=num_steps,
                        attention_kwargs=attention_kwargs)
        x = torch.cat([latents, latents]).to(adapter.dtype)
        enc = torch.cat([cond.tensors["encoder_hidden_states"], cond.negative["encoder_hidden_states"]])
        v = adapter.transformer(hidden_states=x, timestep=adapter.timestep_input(t, 2 * latents.shape[0]),
                                encoder_hidden_states=enc, attention_kwargs=attention_kwargs, return_dict=False)[0]
        v_c, v_u = v.chunk(2)
        return v_u + cond.guidance_scale * (v_c - v_u)

    adapter.predict = predict


def _cache_config(spec: str, dtype: str | None = None):
    """A diffusers cache config from ``taylorseer|fora[:INTERVAL[:WARMUP]]`` or ``fbcache[:THRESHOLD]`` (the
    signature benchmark's syntax and defaults, :mod:`surf_video.bench.signature_accel`). ``dtype``: TaylorSeer's
    factors in the run's dtype instead of float32 (they are the cache's memory)."""
    from .signature_accel import parse_accelerations

    try:
        specs = parse_accelerations(spec)
    except ValueError as e:
        raise ValueError(str(e).replace("--accelerations:", "--cache:", 1)) from None
    if len(specs) != 1 or not specs[0].is_cache:
        raise ValueError(f"--cache: one of taylorseer|fora[:INTERVAL[:WARMUP]] or fbcache[:THRESHOLD], got {spec!r}")
    if dtype is not None and "taylor_factors_dtype" in specs[0].params:
        specs[0].params["taylor_factors_dtype"] = dtype
    return specs[0].kwargs()["cache"], specs[0].params


def _time_baseline(cfg: SpeedConfig, target: str, passes: int, *, batched: bool, phase: str, timer, surf, text,
                   common, lf, family, tc, peak) -> dict:
    """The baseline at ``target``: the diffusers pipeline's own loop (SURF's single-stage loop when the CFG pair
    is batched). Returns :func:`_stage`'s dict plus ``text_len``."""
    th, tw = cfg.target_size or TARGETS[target]
    nb = _steps_run(cfg.steps, cfg.timed_steps, passes)
    timer.phase = phase
    t0 = timer.sync()
    if batched:
        surf(**text, num_inference_steps=nb, stage_sizes=[(th, tw)], switch_step=[], **common)
    else:
        surf.base(**text, height=th, width=tw, num_inference_steps=nb, **common)
    wall = timer.sync() - t0
    shape = (2 if batched else 1, 16, lf, th // 8, tw // 8)
    tlen = _text_len(timer, shape)
    res = _stage(timer, phase, "transformer", shape, wall, nb, cfg.steps, passes,
                 _forward_flops(family, tc, shape, tlen), peak)
    return {**res, "call_wall": wall, "text_len": tlen}


def _forward_flops(family, model_cfg, shape, text_len) -> int:
    b, _, lf, h, w = shape
    p = model_cfg["patch_size"]
    pt, ph, pw = (model_cfg["patch_size_t"], p, p) if family == "hunyuan" else p
    grid = F.PatchGrid(lf // pt, h // ph, w // pw)
    if family == "hunyuan":
        return b * F.hunyuan_forward_flops(model_cfg, grid, text_len)["total"]
    if family == "refiner":
        return b * F.refiner_forward_flops(model_cfg, grid, text_len)["total"]
    return b * F.wan_forward_flops(model_cfg, grid, text_len)["total"]


def run_speed(cfg: SpeedConfig, log=print) -> dict:
    """Baseline vs SURF for one base model at each target size. Returns the JSON-able result."""
    family, tcfg, ref_name, ref_over = ARCHS[cfg.model]
    if family == "refiner":
        return run_refiner_speed(cfg, log)
    rec = _RECIPES[family]
    frames = cfg.num_frames or rec["frames"]
    base, prev = cfg.base_size or rec["base"], cfg.preview_size or rec["preview"]
    device, dtype = torch.device(cfg.device), getattr(torch, cfg.dtype)
    torch.manual_seed(cfg.seed)
    peak = measure_matmul_peak(device)
    log(f"bf16 matmul peak: {peak} TFLOP/s")
    t0 = time.perf_counter()
    transformer = build_transformer(family, tcfg, device, dtype)
    tc = dict(transformer.config)
    text_dim = tc.get("text_dim") or tc.get("text_embed_dim")
    pipe = build_pipeline(family, transformer, device, dtype, text_dim=text_dim,
                          pooled_dim=tc.get("pooled_projection_dim", 768))
    refiner = build_refiner(ref_name, device, dtype, **ref_over)
    params = sum(p.numel() for p in transformer.parameters())
    log(f"built {cfg.model} ({params / 1e9:.2f}B params) + {ref_name} in {time.perf_counter() - t0:.1f}s")
    accelerated = bool(cfg.quantize or cfg.attention_backend or cfg.compile or cfg.batch_cfg or cfg.cache)
    eager_first = cfg.eager_baseline and accelerated
    if not cfg.accel_baseline and not eager_first:
        raise ValueError("--no-accel-baseline needs --eager-baseline and an acceleration (the baseline must be timed once)")
    if eager_first and cfg.parallel:
        raise ValueError("--eager-baseline: not with --parallel (time the eager baseline in its own run)")

    def accelerate():  # what SURFPipeline.enable_accelerations applies
        if cfg.quantize or cfg.attention_backend or cfg.compile:
            from ..pipelines.accel import allow_cache_recompiles, apply_accelerations

            acc = dict(attention_backend=cfg.attention_backend, compile=cfg.compile, quantize=cfg.quantize)
            if cfg.cache and cfg.compile:
                allow_cache_recompiles()  # the cache is enabled later, around SURF's call
            # a cache's hooks break the blocks' graphs (their step counters run outside them): no fullgraph then
            apply_accelerations(transformer, **acc, compile_kwargs={"fullgraph": not cfg.cache})
            apply_accelerations(refiner, **acc)

    if not eager_first:
        accelerate()
    from ..pipelines.surf_pipeline import SURFPipeline

    surf = SURFPipeline.from_pipe(pipe, refiner=refiner, base_size=base)
    surf.set_progress_bar_config(disable=True)
    parallel, peak = _enable_parallel(cfg, surf, peak, log)
    timer = ForwardTimer(device)
    timer.attach(transformer, "transformer")
    timer.attach(refiner, "refiner")
    if family == "wan":
        tl = cfg.text_len or rec["text_len"]
        text = dict(prompt_embeds=torch.randn(1, tl, text_dim, device=device, dtype=dtype),
                    negative_prompt_embeds=torch.randn(1, tl, text_dim, device=device, dtype=dtype))
    else:
        text = dict(prompt=PROMPT)
    g, passes = rec["guidance"], rec["passes"]
    common = dict(num_frames=frames, guidance_scale=g, output_type="latent")
    # warm-up: one plain base-pipeline step at the preview size (kernels, cuBLAS/cuDNN handles, allocator)
    timer.phase = "warmup"
    pipe(**text, height=prev[0], width=prev[1], num_inference_steps=1, **{**common, "guidance_scale": 1.0})
    lf = (frames - 1) // 4 + 1
    bl = dict(timer=timer, surf=surf, text=text, common=common, lf=lf, family=family, tc=tc, peak=peak)
    eager, eager_tlen = {}, {}
    if eager_first:  # the eager baseline in this process, before anything is applied
        for target in cfg.targets:
            eager[target] = _time_baseline(cfg, target, passes, batched=False, phase=f"eager-baseline-{target}", **bl)
            eager_tlen[target] = eager[target].pop("text_len")
            log(f"eager baseline {target}: {eager[target]['seconds']:.1f}s ({eager[target]['note']})")
        timer.records.clear()  # later phases must not count a compiled size as warm because eager saw it
        accelerate()
    batch = 1
    if cfg.batch_cfg and family == "wan":
        _batched_cfg(surf.adapter)
        passes, batch = 1, 2
    cache, cache_params = _cache_config(cfg.cache, cfg.dtype) if cfg.cache else (None, None)
    result = {"model": cfg.model, "family": family, "params": params, "refiner": ref_name,
              "refiner_params": sum(p.numel() for p in refiner.parameters()),
              "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
              "env": _env(cfg, peak), "parallel": parallel, "runs": []}
    for target in cfg.targets:
        th, tw = cfg.target_size or TARGETS[target]
        log(f"--- {cfg.model} {target} ({th}x{tw}, {frames} frames)")
        if cfg.accel_baseline or target not in eager:
            base_res = _time_baseline(cfg, target, passes, batched=batch == 2, phase=f"baseline-{target}", **bl)
            tlen = base_res.pop("text_len")
        else:  # the eager baseline stands in (its text length is the same prompt's)
            base_res, tlen = {**eager[target], "accelerations": "none (eager)"}, eager_tlen[target]
        flops_t = lambda shape: _forward_flops(family, tc, shape, tlen)  # noqa: E731
        log(f"baseline: {base_res['seconds']:.1f}s ({base_res['note']})")
        # SURF: preview stages at the base and preview sizes, then the refiner to the target size.
        n1 = _steps_run(cfg.switch_step, cfg.timed_steps, passes)
        n2 = _steps_run(cfg.surf_steps - cfg.switch_step, cfg.timed_steps, passes)
        nr = _steps_run(cfg.refine_steps, cfg.timed_steps, 1)
        sizes = dict(base_height=base[0], base_width=base[1], preview_height=prev[0], preview_width=prev[1],
                     height=th, width=tw)
        if cache is not None:  # a cache's skips depend on the step: every step runs, after a warm-up call
            transformer.enable_cache(cache)
            timer.phase = f"surf-warmup-{target}"
            n1, n2 = cfg.switch_step, cfg.surf_steps - cfg.switch_step
            # the same steps as the timed call: every (size, computed / predicted) path of a compiled cache is warm
            surf(**text, num_inference_steps=n1 + n2, switch_step=n1, refine_steps=1, **sizes, **common)
        timer.phase = ps = f"surf-{target}"
        out = surf(**text, num_inference_steps=n1 + n2, switch_step=n1, refine_steps=nr, **sizes, **common)
        if cache is not None:
            transformer.disable_cache()
        sb, sp = (batch, 16, lf, base[0] // 8, base[1] // 8), (batch, 16, lf, prev[0] // 8, prev[1] // 8)
        sr = (1, 16, lf, th // 8, tw // 8)
        rc = dict(refiner.config)
        stages = {
            "stage1": _stage(timer, ps, "transformer", sb, out.timings["stage0"], n1, cfg.switch_step, passes,
                             flops_t(sb), peak),
            "stage2": _stage(timer, ps, "transformer", sp, out.timings["stage1"], n2, cfg.surf_steps - cfg.switch_step,
                             passes, flops_t(sp), peak),
            "refine": _stage(timer, ps, "refiner", sr, out.timings["refine"], nr, cfg.refine_steps, 1,
                             _forward_flops("refiner", rc, sr, tlen), peak),
        }
        surf_s = sum(s["seconds"] for s in stages.values())
        run = {"target": target, "height": th, "width": tw, "num_frames": frames, "base_size": list(base),
               "preview_size": list(prev), "baseline": base_res, "surf": stages, "surf_seconds": surf_s,
               "preview_seconds": stages["stage1"]["seconds"] + stages["stage2"]["seconds"],
               "speedup": base_res["seconds"] / surf_s, "text_len": tlen, "cache": cfg.cache,
               "cache_params": cache_params,
               "flops_note": "nominal: a cache's skipped work is not subtracted (TFLOP/s overstated)" if cache else None,
               "baseline_eager": eager.get(target),
               "speedup_vs_eager": eager[target]["seconds"] / surf_s if target in eager else None,
               "pipeline_timings": {"surf_call": out.timings}}
        if target in eager:
            log(f"SURF vs eager baseline: {run['speedup_vs_eager']:.2f}x")
        log(f"SURF: {surf_s:.1f}s -> speed-up {run['speedup']:.2f}x  " +
            ", ".join(f"{k} {v['seconds']:.1f}s" for k, v in stages.items()))
        if cfg.vae_decode:
            run["vae_decode"] = time_vae_decode(family, th, tw, frames, device, dtype)
            d = run["vae_decode"]["seconds"]
            run["speedup_with_decode"] = (base_res["seconds"] + d) / (surf_s + d)
            log(f"VAE decode: {d:.1f}s")
        if cfg.profile:
            run["profiles"] = profile_slow_stages(timer, [base_res, *stages.values()],
                                                   {"transformer": transformer, "refiner": refiner}, log)
        result["runs"].append(run)
        torch.cuda.empty_cache() if device.type == "cuda" else None
    timer.detach()
    return result


def _enable_parallel(cfg: SpeedConfig, surf, peak, log, refiner_only: bool = False):
    """Context parallelism for the run (torchrun job). Returns its description and the peak of all its GPUs."""
    if not cfg.parallel:
        return None, peak
    import torch.distributed as dist

    from ..pipelines import parallel as P

    degree = cfg.parallel_degree or dist.get_world_size()
    if refiner_only:  # the host transformer is never called
        info = {"mode": "ulysses", "degree": degree,
                "backends": {"refiner": P.enable_model_context_parallel(surf.refiner, ulysses_degree=degree)}}
    else:
        info = P.enable_context_parallel(surf, **{f"{cfg.parallel}_degree": degree})
    log(f"context parallelism: {info}")
    # fraction_of_peak then compares with the peak of all the job's GPUs
    return {**info, "peak_per_gpu_tflops": peak}, (peak * degree if peak else peak)


def _text_len(timer: ForwardTimer, shape) -> int:
    args, kwargs = timer.inputs[("transformer", tuple(shape))]
    return int(kwargs["encoder_hidden_states"].shape[1])


def run_refiner_speed(cfg: SpeedConfig, log=print) -> dict:
    """Refiner step time at each target size, for each temporal window (None = full attention)."""
    _, _, ref_name, ref_over = ARCHS[cfg.model]
    device, dtype = torch.device(cfg.device), getattr(torch, cfg.dtype)
    rec = _RECIPES["wan"]
    frames = cfg.num_frames or rec["frames"]
    prev = cfg.preview_size or rec["preview"]
    torch.manual_seed(cfg.seed)
    peak = measure_matmul_peak(device)
    refiner = build_refiner(ref_name, device, dtype, **ref_over)
    rc = dict(refiner.config)
    host = build_transformer("wan", dict(WAN_TINY, text_dim=rc["text_dim"]), device, dtype)  # never called
    pipe = build_pipeline("wan", host, device, dtype)
    if cfg.quantize or cfg.attention_backend or cfg.compile:
        from ..pipelines.accel import apply_accelerations

        apply_accelerations(refiner, attention_backend=cfg.attention_backend, compile=cfg.compile, quantize=cfg.quantize)
    from ..pipelines.surf_pipeline import SURFPipeline

    surf = SURFPipeline.from_pipe(pipe, refiner=refiner)
    surf.set_progress_bar_config(disable=True)
    parallel, peak = _enable_parallel(cfg, surf, peak, log, refiner_only=True)
    timer = ForwardTimer(device)
    timer.attach(refiner, "refiner")
    lf = (frames - 1) // 4 + 1
    tl = cfg.text_len or rec["text_len"]
    pe = torch.randn(1, tl, rc["text_dim"], device=device, dtype=dtype)
    preview = torch.randn(1, 16, lf, prev[0] // 8, prev[1] // 8, device=device)
    result = {"model": cfg.model, "family": "refiner", "refiner": ref_name,
              "refiner_params": sum(p.numel() for p in refiner.parameters()),
              "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
              "env": _env(cfg, peak), "parallel": parallel, "runs": []}
    nr = _steps_run(cfg.refine_steps, cfg.timed_steps, 1)
    for target in cfg.targets:
        th, tw = cfg.target_size or TARGETS[target]
        sr = (1, 16, lf, th // 8, tw // 8)
        rows, profiles = [], []
        for win in cfg.windows:
            refiner.register_to_config(temporal_window_size=win)
            timer.phase = ph = f"{target}-w{win}"
            t0 = timer.sync()
            surf.refine(preview, height=th, width=tw, refine_steps=nr, prompt_embeds=pe, output_type="latent")
            wall = timer.sync() - t0
            st = _stage(timer, ph, "refiner", sr, wall, nr, cfg.refine_steps, 1,
                        _forward_flops("refiner", dict(refiner.config), sr, tl), peak)
            st["temporal_window_size"] = win
            rows.append(st)
            log(f"refiner {target} window {win}: {st['sec_per_forward']:.3f} s/step "
                f"({st['tflops_per_s']:.0f} TFLOP/s) [{st['note']}]")
            if cfg.profile and len(rows) == 1:  # profile the first window now, while the refiner uses it
                profiles = profile_slow_stages(timer, rows, {"refiner": refiner}, log)
        full = next((r for r in rows if r["temporal_window_size"] is None), None)
        for r in rows:
            r["speedup_over_full_attention"] = full["sec_per_forward"] / r["sec_per_forward"] if full else None
        run = {"target": target, "height": th, "width": tw, "num_frames": frames, "windows": rows}
        if cfg.profile:
            run["profiles"] = profiles
        result["runs"].append(run)
    refiner.register_to_config(temporal_window_size=rc["temporal_window_size"])
    timer.detach()
    return result
