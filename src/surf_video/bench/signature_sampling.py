"""Samplers of the signature benchmark that SURFPipeline's public call cannot express.

- :func:`run_branched`: ONE reference trajectory at the base size with every SURF switch branched off it.
  SURF's first ``k`` steps are exactly the reference's first ``k`` steps (same noise, scheduler and
  conditioning), so the k sweep, the three re-noise forms and ``'auto'`` need only their preview stages
  on top of the reference. The switch and the preview stage repeat SURFPipeline's own (same core
  functions, same fresh-noise draws); tests check the outputs equal separate SURFPipeline calls.
- :func:`run_high_low_high`: a Bottleneck-Sampling-style high-low-high schedule (SURFPipeline's stages
  never grow).

Both talk to the pipeline's adapter (``surf.adapter``): Wan bases only.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from ..core.reshift import estimate_x0, relative_change, renoise, resize_latent, resize_noise_gain, snr_resume
from ..core.schedule import restage_sigmas

__all__ = ["run_branched", "run_high_low_high"]


def _scheduler(base_scheduler, num_steps: int, device, sigmas: torch.Tensor | None = None):
    """A fresh flow-matching scheduler (empty solver history), optionally on a resumed stage's sigmas.

    Same construction as SURFPipeline uses for Wan bases (its ``_fresh_scheduler``), kept here so the
    benchmark's own loop does not depend on a private method.
    """
    sched = type(base_scheduler).from_config(base_scheduler.config)
    sched.set_timesteps(num_steps, device=device)
    if sigmas is not None:
        ts_dtype = sched.timesteps.dtype
        sched.sigmas = sigmas.to(sched.sigmas.device, sched.sigmas.dtype)
        sched.timesteps = (sigmas[:-1] * sched.config.num_train_timesteps).to(sched.timesteps.device, ts_dtype)
        sched.num_inference_steps = len(sched.timesteps)
    sched.set_begin_index(0)
    return sched


@torch.no_grad()
def run_high_low_high(surf, prompts: list[str], latents: torch.Tensor, generator, *, num_steps: int, k1: int, k2: int,
                      preview_size: int, guidance_scale: float, max_sequence_length: int,
                      resize_mode: str = "area") -> tuple[torch.Tensor, dict]:
    """High-low-high sampling in the style of Bottleneck Sampling (Tian et al., 2025), Wan bases only.

    Steps ``[0, k1)`` run at the latents' size R, ``[k1, k2)`` at the preview size and ``[k2, N)`` at R
    again, all on the one N-step schedule. At each size change the last evaluation's clean estimate is
    resized (``resize_mode`` down, bilinear up) and re-noised in the flow form with fresh noise at the
    next step's sigma; the solver restarts. SURFPipeline cannot do this (its stages never grow), hence this
    small loop over the pipeline's adapter. With ``k2 = N`` it is exactly SURF with ``renoise='flow'`` and
    ``switch_step=k1`` (tested).

    Args:
        surf: a ``SURFPipeline`` around a ``WanPipeline``.
        prompts: B captions.
        latents: initial noise ``[B, C, F, h, w]`` at R.
        generator: generator(s) of the fresh noise (a list of B, or one).
        num_steps: N.
        k1, k2: the switch steps, ``0 < k1 <= k2 <= N``.
        preview_size: the middle stage's size in pixels (square).

    Returns:
        ``(final latents (at R unless k2 = N), info)`` with ``info['evals']`` (forward passes, CFG counted) per stage size
        (``{'base': ..., 'preview': ...}``) and ``info['seconds']``.
    """
    a = surf.adapter
    if a.name != "wan":
        raise ValueError("run_high_low_high: only Wan bases are supported")
    if not 0 < k1 <= k2 <= num_steps:
        raise ValueError(f"run_high_low_high: need 0 < k1 <= k2 <= num_steps, got k1={k1}, k2={k2}, N={num_steps}")
    t0 = time.perf_counter()
    cond = a.encode(prompts, None, guidance_scale, 1, max_sequence_length)
    per_eval = 2 if cond.do_cfg else 1
    base_lat = tuple(latents.shape[-2:])
    low_lat = (preview_size // a.spatial_factor, preview_size // a.spatial_factor)
    sched = _scheduler(surf.base.scheduler, num_steps, a.device)
    base_sigmas = sched.sigmas.clone()
    stages = [(base_lat, 0, k1), (low_lat, k1, k2), (base_lat, k2, num_steps)]
    stages = [s for s in stages if s[2] > s[1]]
    z = latents.to(a.device, torch.float32)
    evals = {"base": 0, "preview": 0}
    step, last = 0, None
    for si, (size, start, end) in enumerate(stages):
        if si > 0:  # size change: re-noise the resized clean estimate at this stage's first sigma
            mode = resize_mode if size[0] < last[0].shape[-2] else "bilinear"
            x0 = resize_latent(estimate_x0(*last), size, mode)
            sigmas = restage_sigmas(base_sigmas, start, end)
            z = renoise(x0, float(sigmas[0]), _randn(x0, generator), "flow")
            sched = _scheduler(surf.base.scheduler, num_steps, a.device, sigmas)
            a.reset_cache()
        for i, t in enumerate(sched.timesteps[: end - start]):
            sigma = float(sched.sigmas[i])
            v = a.predict(z, t, cond, step_index=step, sigma=sigma, num_steps=num_steps)
            last = (z, sigma, v)
            z = sched.step(v, t, z, return_dict=False)[0]
            step += 1
        evals["base" if size == base_lat else "preview"] += (end - start) * per_eval
    if a.device.type == "cuda":
        torch.cuda.synchronize()
    return z, {"evals": evals, "seconds": time.perf_counter() - t0}


def _randn(x: torch.Tensor, generator) -> torch.Tensor:
    from diffusers.utils.torch_utils import randn_tensor

    return randn_tensor(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _item_seed(seed: int, prompt_index: int) -> int:
    return int(seed) * 1_000_003 + int(prompt_index)


def _noise(item_seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """``[B, *shape]`` standard normal noise, item ``i`` drawn from ``Generator().manual_seed(item_seeds[i])``."""
    return torch.cat([torch.randn((1, *shape), generator=torch.Generator().manual_seed(s)) for s in item_seeds])


def _generators(item_seeds: list[int]) -> list[torch.Generator]:
    # Seeded apart from the initial noise (offset) so the switch's fresh noise is a new draw.
    return [torch.Generator().manual_seed(s + 7_777_777) for s in item_seeds]


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _subset(cond, idx: list[int]):
    """The conditioning of a subset of the batch (positive and negative embeddings sliced alike)."""
    pick = torch.as_tensor(idx, dtype=torch.long)
    tensors = {k: v[pick.to(v.device)] for k, v in cond.tensors.items()}
    negative = None if cond.negative is None else {k: v[pick.to(v.device)] for k, v in cond.negative.items()}
    return replace(cond, tensors=tensors, negative=negative)


@torch.no_grad()
def run_branched(surf, prompts: list[str], latents: torch.Tensor, item_seeds: list[int], *, num_steps: int,
                 preview_size: int, guidance_scale: float, max_sequence_length: int, branches: list[tuple[str, int]],
                 auto_forms: tuple[str, ...] = (), auto_tol: float = 0.05, min_switch_step: int = 2,
                 max_switch_step: int | None = None, resize_mode: str = "area",
                 resume_schedule: str = "truncate") -> dict:
    """The reference run at the latents' size with SURF branches switching off it (Wan bases).

    Equivalent to one ``SURFPipeline`` call per branch with ``switch_step=k``, ``renoise=form``, the same
    ``latents`` and ``generator=_generators(item_seeds)`` (fresh generators per branch, so each branch
    draws the same switch noise a separate call would), and to one call per video with
    ``switch_step='auto'`` (the pipeline decides 'auto' for a whole batch; here each video decides alone,
    as a call with one video does). Euler and UniPC (the solver restarts at the switch, as in the pipeline).

    Args:
        surf: ``SURFPipeline`` around a Wan base.
        prompts: B captions.
        latents: initial noise ``[B, C, F, h, w]`` at the base size.
        item_seeds: B seeds of the switch's fresh noise generators (see :func:`_generators`).
        num_steps: N.
        preview_size: preview size in pixels (square).
        branches: ``(form, k)`` pairs with ``0 < k < N``.
        auto_forms: forms to run with ``switch_step='auto'``.
        auto_tol, min_switch_step, max_switch_step: the pipeline's 'auto' arguments.

    Returns:
        ``{"reference": {...}, (form, k): {...}, (form, "auto"): {...}}``, each with ``latents`` ``[B, ...]``,
        per-video ``evals`` (list of ``{"base": n, "preview": n}``, CFG counted), ``seconds`` per video
        (the shared prefix's measured time plus the branch's own) and ``switch`` (list of per-video lists).
    """
    a = surf.adapter
    if a.name != "wan":
        raise ValueError("run_branched: only Wan bases are supported")
    n = num_steps
    max_switch = max_switch_step or n
    if any(not 0 < k < n for _, k in branches):
        raise ValueError(f"branches: switch steps must lie in (0, {n}), got {branches}")
    b = latents.shape[0]
    t0 = time.perf_counter()
    cond = a.encode(prompts, None, guidance_scale, 1, max_sequence_length)
    per_eval = 2 if cond.do_cfg else 1
    sched = _scheduler(surf.base.scheduler, n, a.device)
    base_sigmas = sched.sigmas.clone()
    low = (preview_size // a.spatial_factor, preview_size // a.spatial_factor)
    _sync(a.device)
    prefix = [time.perf_counter() - t0]  # prefix[i]: seconds spent before step i (text encoding first)
    z = latents.to(a.device, torch.float32)
    want = {k for _, k in branches}
    snaps: dict[int, tuple] = {}
    chosen: list[int | None] = [None] * b
    prev: list[torch.Tensor | None] = [None] * b
    for i, t in enumerate(sched.timesteps):
        ts = time.perf_counter()
        sigma = float(sched.sigmas[i])
        v = a.predict(z, t, cond, step_index=i, sigma=sigma, num_steps=n)
        last = (z, sigma, v)
        if auto_forms:  # the same rule as the pipeline's, per video
            x0s = resize_latent(estimate_x0(z, sigma, v), low, resize_mode)
            for j in range(b):
                if chosen[j] is None:
                    change = relative_change(x0s[j : j + 1], prev[j]) if prev[j] is not None else float("inf")
                    prev[j] = x0s[j : j + 1]
                    if (i + 1 >= min_switch_step and change < auto_tol) or i + 1 >= max_switch:
                        chosen[j] = i + 1
        z = sched.step(v, t, z, return_dict=False)[0]
        if i + 1 in want or (i + 1 < n and (i + 1) in chosen):
            snaps[i + 1] = (last, z)
        _sync(a.device)
        prefix.append(prefix[-1] + time.perf_counter() - ts)
    out = {"reference": {"latents": z, "evals": [{"base": n * per_eval, "preview": 0}] * b,
                         "seconds": prefix[n] / b, "switch": [[n]] * b}}
    def branch(form, k, idx):
        tb = time.perf_counter()
        (zp, sp, vp), zk = snaps[k]
        pick = torch.as_tensor(idx, dtype=torch.long, device=zk.device)
        zk, zp, vp = zk[pick], zp[pick], vp[pick]
        gens = [_generators([item_seeds[j]])[0] for j in idx]
        if form == "snr":
            gain = resize_noise_gain(tuple(zk.shape[-2:]), low, resize_mode)
            zs, s_new = snr_resume(resize_latent(zk, low, resize_mode), float(base_sigmas[k]), gain)
            sigmas = restage_sigmas(base_sigmas, k, n, first_sigma=s_new, mode=resume_schedule)
        else:
            x0 = resize_latent(estimate_x0(zp, sp, vp), low, resize_mode)
            sigmas = restage_sigmas(base_sigmas, k, n)
            zs = renoise(x0, float(sigmas[0]), _randn(x0, gens), form)
        st = _scheduler(surf.base.scheduler, n, a.device, sigmas)
        sub = cond if len(idx) == b else _subset(cond, idx)
        a.reset_cache()
        steps = st.timesteps[: n - k]
        for i, t in enumerate(steps):
            v = a.predict(zs, t, sub, step_index=k + i, sigma=float(st.sigmas[i]), num_steps=n)
            zs = st.step(v, t, zs, return_dict=False)[0]
        _sync(a.device)
        own = (time.perf_counter() - tb) / len(idx)
        ev = {"base": k * per_eval, "preview": len(steps) * per_eval}
        return zs, ev, prefix[k] / b + own

    for form, k in branches:
        zs, ev, sec = branch(form, k, list(range(b)))
        out[(form, k)] = {"latents": zs, "evals": [ev] * b, "seconds": sec, "switch": [[k]] * b}
    for form in auto_forms:
        lat = [None] * b
        evs, secs = [None] * b, [0.0] * b
        for k in sorted(set(chosen)):
            idx = [j for j in range(b) if chosen[j] == k]
            if k >= n:  # never settled: no switch, the reference itself (as the pipeline does)
                for j in idx:
                    lat[j], evs[j], secs[j] = out["reference"]["latents"][j], out["reference"]["evals"][j], prefix[n] / b
                continue
            zs, ev, sec = branch(form, k, idx)
            for r, j in enumerate(idx):
                lat[j], evs[j], secs[j] = zs[r], ev, sec
        # a video that never switched stays at the base size; the benchmark scores at the preview size anyway
        out[(form, "auto")] = {"latents": lat, "evals": evs, "seconds": float(sum(secs) / b),
                               "switch": [[c] for c in chosen]}
    return out
