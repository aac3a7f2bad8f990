"""Context-parallel speed of SURF's stages: Wan 2.1 14B + refiner-1b on 1 GPU vs N GPUs (Ulysses, ring).

Launch on 2 H100s (NVLink multicast must stay off on these machines), from the repository root:

    NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 OUT=out PYTHONPATH=src torchrun --nproc_per_node 2 benchmarks/multigpu/cp_speed.py

CPU check of the logic (2 gloo processes, tiny models, fp32; ring is skipped: no CPU backend returns the LSE):

    OMP_NUM_THREADS=1 OUT=/tmp/cp PYTHONPATH=src torchrun --nproc_per_node 2 benchmarks/multigpu/cp_speed.py --tiny

What it does (random weights built on the GPU in bf16 as ``surf bench speed`` does, identical on every rank):
one forward per stage of the paper's recipe at 81 frames -- the base at 720p (the baseline's step), 480p and
240p (SURF's two preview stages), and refiner-1b at 720p with window 7 -- each with the batch the pipeline
uses (Wan's CFG runs as two batch-1 passes, counted twice per step). Phase 1: every rank runs the 1-GPU
reference on its own GPU (no communication; the reported 1-GPU time is rank 0's). Phase 2: Ulysses over all
ranks (base and refiner). Phase 3: ring for the base (the refiner has no ring variant). Each CP output is
compared with the same rank's 1-GPU output for the same inputs. Rank 0 writes ``$OUT/cp_speed.json`` with
per-stage seconds, speed-ups, errors, peak memory and the recipe times extrapolated from per-forward times
(baseline 50 steps x 2 CFG passes at 720p; SURF 10 x 2 at 480p + 30 x 2 at 240p + 10 refiner steps), like
``surf bench speed --timed-steps``: text encoding, scheduler work and the VAE decode are not included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from surf_video.bench.speed import WAN14B, WAN_TINY, build_refiner, build_transformer
from surf_video.pipelines.parallel import (
    disable_context_parallel,
    enable_model_context_parallel,
    init_distributed,
)

#: stage -> (model, pixel size, recipe forwards: steps x CFG passes), for the full and the tiny runs
STAGES = {
    "base_720p": ("base", (720, 1280), ("baseline", 50, 2)),
    "base_480p": ("base", (480, 832), ("surf", 10, 2)),
    "base_240p": ("base", (240, 416), ("surf", 30, 2)),
    "refiner_720p": ("refiner", (720, 1280), ("surf", 10, 1)),
}
TINY_SIZES = {"base_720p": (64, 96), "base_480p": (32, 64), "base_240p": (16, 32), "refiner_720p": (64, 96)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny models on the CPU (gloo): checks the logic only")
    p.add_argument("--frames", type=int, default=None, help="video frames (default 81; 9 with --tiny)")
    p.add_argument("--window", type=int, default=None, help="refiner temporal window in latent frames (default 7; "
                   "2 with --tiny, so that its 3 latent frames are windowed)")
    p.add_argument("--text-len", type=int, default=512)
    p.add_argument("--warmup", type=int, default=1, help="untimed forwards per stage and phase")
    p.add_argument("--timed", type=int, default=2, help="timed forwards per stage and phase")
    p.add_argument("--batch-cfg", action="store_true", help="time both CFG passes as one batch of 2")
    p.add_argument("--no-ring", action="store_true", help="skip the ring phase")
    p.add_argument("--stages", default=",".join(STAGES), help="comma list of " + ", ".join(STAGES))
    p.add_argument("--out", default=os.environ.get("OUT", "out"), help="folder for cp_speed.json (default $OUT)")
    return p.parse_args(argv)


def log(msg: str) -> None:
    if dist.get_rank() == 0:
        print(f"[cp_speed {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def broadcast_weights(model) -> None:
    """Rank 0's weights on every rank (the random init is then identical whatever the RNG does per GPU)."""
    for t in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(t.data, src=0)


def build(args, device, dtype):
    torch.manual_seed(0)
    if args.tiny:
        base = build_transformer("wan", WAN_TINY, device, dtype)
        refiner = build_refiner("refiner-tiny", device, dtype, text_dim=32, temporal_window_size=args.window)
    else:
        base = build_transformer("wan", WAN14B, device, dtype)
        refiner = build_refiner("refiner-1b", device, dtype, temporal_window_size=args.window)
    for m in (base, refiner):
        broadcast_weights(m)
    return base, refiner


def make_inputs(args, base, refiner, device, dtype) -> dict:
    """Same inputs on every rank (CPU generator), per stage: (latent, timestep, text embeddings)."""
    g = torch.Generator().manual_seed(1)
    lf = (args.frames - 1) // 4 + 1
    batch = 2 if args.batch_cfg else 1
    inputs = {}
    for name in args.stages:
        which, size, _ = STAGES[name]
        h, w = TINY_SIZES[name] if args.tiny else size
        model = base if which == "base" else refiner
        b = batch if which == "base" else 1  # the refiner runs without CFG
        x = torch.randn(b, 16, lf, h // 8, w // 8, generator=g).to(device, dtype)
        text = torch.randn(b, args.text_len, model.config.text_dim, generator=g).to(device, dtype)
        inputs[name] = (x, torch.full((b,), 700.0, device=device), text)
    return inputs


def tokens_of(model, x) -> int:
    pt, ph, pw = model.config.patch_size
    return (x.shape[2] // pt) * (x.shape[3] // ph) * (x.shape[4] // pw)


@torch.no_grad()
def time_stage(model, inputs, warmup: int, timed: int, device) -> tuple[list[float], torch.Tensor]:
    x, t, text = inputs
    out = None
    times = []
    for i in range(warmup + timed):
        sync(device)
        t0 = time.perf_counter()
        out = model(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times, out


def errors(out: torch.Tensor, ref: torch.Tensor) -> dict:
    d = (out.float() - ref.float())
    r = ref.float()
    return {"max_abs": d.abs().max().item(), "ref_max_abs": r.abs().max().item(),
            "max_abs_over_ref_max": (d.abs().max() / r.abs().max().clamp_min(1e-12)).item(),
            "rel_l2": (d.norm() / r.norm().clamp_min(1e-12)).item()}


def peak_memory(device) -> float | None:
    if device.type != "cuda":
        return None
    gib = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return gib


def run_phase(phase, models, inputs, args, device, refs=None, only=None) -> dict:
    """Times every stage (``only``: a subset) with the models as they are now configured."""
    res = {}
    for name in args.stages:
        which = STAGES[name][0]
        if only is not None and which not in only:
            continue
        dist.barrier()  # the ranks start each stage together
        times, out = time_stage(models[which], inputs[name], args.warmup, args.timed, device)
        row = {"seconds_per_forward": sum(times) / len(times), "forward_times": times}
        if refs is None:
            refs_out = out
            row["output_shape"] = list(out.shape)
        else:
            refs_out = None
            row["error_vs_1gpu"] = errors(out, refs[name])
        res[name] = (row, refs_out)
        log(f"{phase} {name}: {row['seconds_per_forward']:.3f} s/forward" +
            (f", rel_l2 error {row['error_vs_1gpu']['rel_l2']:.2e}" if "error_vs_1gpu" in row else ""))
    return res


def recipe(per_fwd: dict, batch_cfg: bool) -> dict:
    """Extrapolated transformer seconds of the baseline and of SURF from per-forward seconds."""
    out = {}
    for kind in ("baseline", "surf"):
        parts = {}
        for name, sec in per_fwd.items():
            which, _, (k, steps, passes) = STAGES[name]
            if k == kind:  # a batch-2 base forward already holds both CFG passes
                parts[name] = sec * steps * (1 if batch_cfg and which == "base" else passes)
        out[kind] = {"seconds": sum(parts.values()), "parts": parts,
                     "complete": all(n in per_fwd for n in STAGES if STAGES[n][2][0] == kind)}
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    for s in args.stages:
        if s not in STAGES:
            raise SystemExit(f"--stages: unknown stage {s!r}; choose from {list(STAGES)}")
    args.frames = args.frames or (9 if args.tiny else 81)
    args.window = args.window or (2 if args.tiny else 7)
    if args.tiny:
        args.text_len = min(args.text_len, 8)
    info = init_distributed("cpu" if args.tiny else None)
    device = info.device
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    world = info.world_size
    t_start = time.perf_counter()
    log(f"world size {world}, device {device}, dtype {dtype}, frames {args.frames}")
    base, refiner = build(args, device, dtype)
    models = {"base": base, "refiner": refiner}
    log(f"built base ({sum(p.numel() for p in base.parameters()) / 1e9:.2f}B) and refiner "
        f"({sum(p.numel() for p in refiner.parameters()) / 1e9:.2f}B) in {time.perf_counter() - t_start:.0f}s")
    inputs = make_inputs(args, base, refiner, device, dtype)
    for name in args.stages:  # fail early (before minutes of GPU time) on sizes the degree does not divide
        m = models[STAGES[name][0]]
        n = tokens_of(m, inputs[name][0])
        if n % world:
            raise SystemExit(f"{name}: {n} tokens are not divisible by the world size {world}")
    peak_memory(device)

    # Phase 1: the 1-GPU reference, on every rank at once (no communication).
    ref = run_phase("1gpu", models, inputs, args, device)
    refs = {n: o for n, (_, o) in ref.items()}
    mem = {"1gpu": peak_memory(device)}
    result_stages = {n: {"model": STAGES[n][0], "latent_shape": list(inputs[n][0].shape),
                         "tokens": tokens_of(models[STAGES[n][0]], inputs[n][0]), "1gpu": row}
                     for n, (row, _) in ref.items()}
    gathered = [None] * world
    dist.all_gather_object(gathered, {n: r["1gpu"]["seconds_per_forward"] for n, r in result_stages.items()})
    for n in result_stages:
        result_stages[n]["1gpu_per_rank"] = [g[n] for g in gathered]

    # Phase 2: Ulysses over every rank, base and refiner.
    backends = {k: enable_model_context_parallel(m, ulysses_degree=world) for k, m in models.items()}
    uly = run_phase(f"ulysses{world}", models, inputs, args, device, refs=refs)
    mem["ulysses"] = peak_memory(device)
    for n, (row, _) in uly.items():
        result_stages[n][f"ulysses{world}"] = {**row, "attention_backend": backends[STAGES[n][0]]}

    # Phase 3: ring for the base (no CPU backend returns the LSE ring attention needs).
    ring_note = None
    if args.no_ring:
        ring_note = "skipped (--no-ring)"
    elif device.type != "cuda":
        ring_note = "skipped on the CPU: ring attention needs an LSE-returning backend, all CUDA-only"
    else:
        try:
            disable_context_parallel(base)
            rb = enable_model_context_parallel(base, ring_degree=world)
            ring = run_phase(f"ring{world}", models, inputs, args, device, refs=refs, only=("base",))
            for n, (row, _) in ring.items():
                result_stages[n][f"ring{world}"] = {**row, "attention_backend": rb}
            mem["ring"] = peak_memory(device)
        except Exception as err:  # keep the Ulysses results if ring fails
            ring_note = f"failed: {type(err).__name__}: {err}"[:2000]
            log(f"ring {ring_note}")
    mem_all = [None] * world
    dist.all_gather_object(mem_all, mem)

    # Speed-ups and recipe extrapolation.
    modes = ["1gpu", f"ulysses{world}", f"ring{world}"]
    per_mode = {}
    for mode in modes:
        fw = {n: r[mode]["seconds_per_forward"] for n, r in result_stages.items() if mode in r}
        if mode.startswith("ring") and fw:  # ring covers the base only; the refiner runs Ulysses
            fw.update({n: r[f"ulysses{world}"]["seconds_per_forward"] for n, r in result_stages.items()
                       if STAGES[n][0] == "refiner" and f"ulysses{world}" in r})
        if fw:
            per_mode[mode] = recipe(fw, args.batch_cfg)
    for n, r in result_stages.items():
        for mode in modes[1:]:
            if mode in r:
                r[mode]["speedup_vs_1gpu"] = r["1gpu"]["seconds_per_forward"] / r[mode]["seconds_per_forward"]
    one = per_mode["1gpu"]
    summary = {}
    for mode, rec in per_mode.items():
        summary[mode] = {"baseline_seconds": rec["baseline"]["seconds"], "surf_seconds": rec["surf"]["seconds"],
                         "baseline_speedup_vs_1gpu": one["baseline"]["seconds"] / rec["baseline"]["seconds"]
                         if rec["baseline"]["seconds"] else None,
                         "surf_speedup_vs_1gpu": one["surf"]["seconds"] / rec["surf"]["seconds"]
                         if rec["surf"]["seconds"] else None,
                         "surf_vs_1gpu_baseline": one["baseline"]["seconds"] / rec["surf"]["seconds"]
                         if rec["surf"]["seconds"] else None,
                         "complete": rec["baseline"]["complete"] and rec["surf"]["complete"], "parts": rec}
    if info.rank == 0:
        import diffusers

        res = {
            "benchmark": "context-parallel SURF stages (transformer forwards only)",
            "models": {"base": "Wan 2.1 14B" if not args.tiny else "wan-tiny",
                       "refiner": ("refiner-1b" if not args.tiny else "refiner-tiny") + f", window {args.window}"},
            "tiny": args.tiny, "world_size": world, "frames": args.frames, "dtype": str(dtype),
            "batch_cfg": args.batch_cfg, "warmup": args.warmup, "timed": args.timed,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "command": " ".join(shlex.quote(a) for a in ["torchrun", "--nproc_per_node", str(world), *sys.argv]),
            "env": {k: os.environ.get(k) for k in ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST",
                                                   "NVSHMEM_DISABLE_NVLS", "SURF_GIT_COMMIT")},
            "stages": result_stages, "recipe": summary, "ring": ring_note or "ok",
            "peak_memory_gib_per_rank": mem_all, "wall_seconds": time.perf_counter() - t_start,
            "notes": "1gpu = each rank alone on its own GPU (rank 0's time reported; per-rank times listed). "
                     "Errors: CP output vs the same rank's 1-GPU output for the same inputs. Recipe seconds are "
                     "extrapolated from per-forward times (no text encoder, scheduler or VAE).",
        }
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".cp_speed.json.tmp"
        tmp.write_text(json.dumps(res, indent=2))
        os.replace(tmp, out / "cp_speed.json")
        log(f"wrote {out / 'cp_speed.json'}: " + ", ".join(
            f"{m}: baseline {s['baseline_seconds']:.1f}s, SURF {s['surf_seconds']:.1f}s" for m, s in summary.items()))
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
