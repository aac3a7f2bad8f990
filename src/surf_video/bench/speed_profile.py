"""torch.profiler summaries of one forward, for stages that run far below the GPU's matmul peak."""

from __future__ import annotations

import torch

__all__ = ["profile_forward", "profile_slow_stages"]


def _kernel_kind(name: str) -> str:
    low = name.lower()
    if any(s in low for s in ("flash", "fmha", "attention", "attn", "sdpa")):
        return "attention"
    if any(s in low for s in ("gemm", "xmma", "cutlass", "nvjet", "cublas", "wgmma")):
        return "gemm"
    return "other (norms, elementwise, copies, conv)"


def profile_forward(module, args, kwargs, top: int = 12) -> dict:
    """``torch.profiler`` over one forward: the top GPU kernels and the GPU time per kernel kind."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        module(*args, **kwargs)
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        dev = getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
        if dev > 0 and str(getattr(e, "device_type", "")).endswith("CUDA"):
            rows.append((e.key, dev / 1e3, e.count))
    total = sum(r[1] for r in rows) or 1.0
    kinds: dict[str, float] = {}
    for name, ms, _ in rows:
        kinds[_kernel_kind(name)] = kinds.get(_kernel_kind(name), 0.0) + ms
    rows.sort(key=lambda r: -r[1])
    return {
        "gpu_ms": total,
        "by_kind": {k: {"ms": v, "share": v / total} for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "top_kernels": [{"name": n[:160], "ms": ms, "calls": c, "share": ms / total, "kind": _kernel_kind(n)}
                        for n, ms, c in rows[:top]],
    }


def profile_slow_stages(timer, stage_results, modules, log, threshold: float = 0.6, max_sec: float = 20.0) -> list:
    """Profiles one forward of the cheapest stage under ``threshold`` of the peak, per module."""
    out = []
    for name, module in modules.items():
        cands = [s for s in stage_results if s["fraction_of_peak"] is not None and s["fraction_of_peak"] < threshold
                 and s["sec_per_forward"] < max_sec and (name, tuple(s["latent_shape"])) in timer.inputs]
        cands = [s for s in cands if s["module"] == name]
        if not cands:
            continue
        s = min(cands, key=lambda s: s["sec_per_forward"])
        args, kwargs = timer.inputs[(name, tuple(s["latent_shape"]))]
        timer.phase = "profile"
        prof = profile_forward(module, args, kwargs)
        prof.update(module=name, latent_shape=s["latent_shape"], fraction_of_peak=s["fraction_of_peak"])
        log(f"profile {name} {s['latent_shape']}: " + ", ".join(f"{k} {v['share']:.0%}" for k, v in prof["by_kind"].items()))
        out.append(prof)
    return out
