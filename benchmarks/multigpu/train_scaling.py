"""Worker and report of benchmarks/multigpu/train_scaling.sh (refiner training over 1 and 2 GPUs).

Subcommands (each a process of ``accelerate launch`` except ``latents`` and ``report``):

- ``latents DIR``: a random latent cache (``surf cache-latents`` layout) of the shapes of 21 pixel
  frames at 720p through the Wan VAE (16 x 6 x 90 x 160) with 512 x 4096 text embeddings.
- ``throughput WORK NAME``: ``configs/refiner/refiner-1b.yaml`` (random init, bf16, gradient
  checkpointing, EMA) on that cache; times ``--steps`` optimizer steps after ``--warmup``; peak
  memory of every rank. Checkpoint writes are switched off (they are not what is timed).
- ``convergence WORK NAME``: ``configs/refiner/tiny.yaml`` on the procedural world (32 x 32 px, 5
  frames) for ``--steps`` steps at global batch ``--global-batch``; loss log in WORK/NAME/logs.
- ``killresume WORK NAME [--kill-at N | --resume --reference REF]``: the same tiny recipe, killed
  (``os._exit`` on every rank) after step N, or resumed and followed by an uninterrupted run.
- ``report WORK OUT``: ``OUT/train_scaling.json``, ``convergence.csv`` and ``convergence.png``.

``--tiny`` shrinks everything for a CPU rehearsal (2 gloo processes).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LATENT_SHAPE = (16, 6, 90, 160)  # 21 frames at 720 x 1280 through the Wan VAE (4x time, 8x space)
TEXT_SHAPE = (512, 4096)
TINY_LATENT_SHAPE, TINY_TEXT_SHAPE = (16, 2, 8, 8), (8, 16)


def _emit(work: Path, name: str, row: dict) -> None:
    (work / f"{name}.json").write_text(json.dumps(row, indent=1))
    print("RESULT " + json.dumps(row), flush=True)


# --------------------------------------------------------------------------------------- latents
def make_latents(a) -> None:
    import torch
    from safetensors.torch import save_file

    out = Path(a.dir)
    out.mkdir(parents=True, exist_ok=True)
    z_shape, t_shape = (TINY_LATENT_SHAPE, TINY_TEXT_SHAPE) if a.tiny else (LATENT_SHAPE, TEXT_SHAPE)
    g = torch.Generator().manual_seed(0)
    tensors, items = {}, []
    for i in range(a.n):
        hr = torch.randn(z_shape, generator=g)
        tensors[f"{i}.z_hr"] = hr
        tensors[f"{i}.z_lr"] = hr + 0.5 * torch.randn(z_shape, generator=g)
        tensors[f"{i}.text"] = torch.randn(t_shape, generator=g)
        items.append({"shard": "shard-00000.safetensors", "key": str(i), "caption": f"random {i}", "source": "random"})
    save_file(tensors, str(out / "shard-00000.safetensors"))
    (out / "index.json").write_text(json.dumps({"version": 1, "items": items, "done": [], "temporal_factor": 4}))
    print(f"wrote {a.n} random latent pairs {z_shape} + text {t_shape} to {out}")


# ------------------------------------------------------------------------------------ throughput
class _OutOfTime(Exception):
    pass


def throughput(a) -> None:
    import torch

    from surf_video.train.config import load_config
    from surf_video.train.trainer import Trainer

    work = Path(a.work)
    over = {
        "output_dir": str(work / a.name), "batch_size": 1,
        "data": {"type": "latents", "path": a.latents, "num_frames": 5 if a.tiny else 21,
                 "size": [32, 32] if a.tiny else [720, 1280], "num_workers": 2, "latent_crop": "start"},
        "phases": [{"name": "frames-21", "steps": a.warmup + a.steps, "num_frames": 5 if a.tiny else 21}],
        "checkpoint": {"every": 10**9, "keep": 1},
        "logging": {"every": 1, "tensorboard": False, "plot_every": 0},
        "validation": {"every": 0},
    }
    cfg = load_config(ROOT / "configs" / "refiner" / "refiner-1b.yaml", over)
    cfg.model.init_from_wan = None  # random weights: no hub on the GPU host
    cfg.optim.gradient_accumulation_steps = a.accum
    if a.tiny:
        cfg.model.name, cfg.model.temporal_window_size, cfg.mixed_precision = "refiner-tiny", 2, "no"
    times: list[float] = []
    cuda = torch.cuda.is_available()
    stopped_early = False

    def tick(step: int) -> None:
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter())
        if a.max_s and step >= a.warmup + 3:
            # stop inside the time budget if steps are slower than planned; every rank takes the
            # same decision (the max of their clocks), so no rank waits in a collective alone
            late = torch.tensor([times[-1] - times[0]], device=trainer.acc.device)
            if trainer.acc.num_processes > 1:
                late = trainer.acc.reduce(late, reduction="max")
            if float(late) > a.max_s:
                raise _OutOfTime

    t0 = time.perf_counter()
    trainer = Trainer(cfg, on_step_end=tick)
    build_s = time.perf_counter() - t0
    trainer.save_checkpoint = lambda: None  # the run's last step would write a 1.3B-parameter checkpoint
    try:
        last_loss = trainer.train().last_loss
    except _OutOfTime:
        stopped_early, last_loss = True, None
    acc = trainer.acc
    mem = [torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30] if cuda else [0.0, 0.0]
    mem = acc.gather(torch.tensor([mem], device=acc.device)).cpu().tolist()
    if not acc.is_main_process:
        return
    timed = times[a.warmup:]
    span = timed[-1] - timed[0]
    n = len(timed) - 1
    global_batch = cfg.batch_size * acc.num_processes * a.accum
    step_times = [b - c for c, b in zip(times[:-1], times[1:])]
    n_params = sum(p.numel() for p in trainer.model.parameters())  # a DTensor counts its full shape
    _emit(work, a.name, {
        "name": a.name, "distributed_type": str(acc.distributed_type), "fsdp": trainer.fsdp,
        "processes": acc.num_processes, "batch_per_process": cfg.batch_size, "grad_accum": a.accum,
        "global_batch": global_batch, "timed_steps": n, "warmup_steps": a.warmup,
        "s_per_step": span / n, "samples_per_s": global_batch * n / span,
        "step_times_s": [round(x, 4) for x in step_times],
        "peak_mem_allocated_gib_per_rank": [round(m[0], 3) for m in mem],
        "peak_mem_reserved_gib_per_rank": [round(m[1], 3) for m in mem],
        "mixed_precision": cfg.mixed_precision, "gradient_checkpointing": cfg.model.gradient_checkpointing,
        "ema": cfg.optim.ema_decay, "model": cfg.model.name, "params": n_params,
        "latent_shape": list(TINY_LATENT_SHAPE if a.tiny else LATENT_SHAPE), "last_loss": last_loss,
        "stopped_early_by_max_s": stopped_early, "build_s": round(build_s, 2),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
    })


# ----------------------------------------------------------------------------- tiny-world recipes
def tiny_world_cfg(out: Path, steps: int, global_batch: int, nproc: int, tiny: bool, ckpt_every: int):
    from surf_video.train.config import load_config

    if global_batch % nproc:
        raise ValueError(f"--global-batch {global_batch} must divide by the {nproc} processes")
    over = {
        "output_dir": str(out), "batch_size": global_batch // nproc, "cpu_threads": 1,
        "data": {"type": "procedural", "source": "surf_video.train.data:world_pair_sample", "num_samples": 512,
                 "num_frames": 3 if tiny else 5, "size": [16, 16] if tiny else [32, 32],
                 "num_workers": 0 if tiny else 2},
        "phases": [{"name": "world", "steps": steps}],
        "checkpoint": {"every": ckpt_every, "keep": 2},
        "logging": {"every": 1, "tensorboard": False, "plot_every": 0},
        "validation": {"every": 0},  # validation videos need PyAV, absent on the GPU host
    }
    cfg = load_config(ROOT / "configs" / "refiner" / "tiny.yaml", over)
    cfg.degrade.pixel.codec_prob = 0.0  # the H.264 round trip needs PyAV too (exact LR pairs: unused anyway)
    return cfg


def _nproc() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def convergence(a) -> None:
    from surf_video.train.trainer import Trainer

    work = Path(a.work)
    cfg = tiny_world_cfg(work / a.name, a.steps, a.global_batch, _nproc(), a.tiny, ckpt_every=max(a.steps // 3, 1))
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    result = trainer.train()
    trainer.export()  # FSDP: full weights gathered to rank 0
    if trainer.acc.is_main_process:
        _emit(work, a.name, {"name": a.name, "distributed_type": str(trainer.acc.distributed_type),
                             "fsdp": trainer.fsdp, "processes": trainer.acc.num_processes,
                             "global_batch": cfg.batch_size * trainer.acc.num_processes, "steps": result.step,
                             "last_loss": result.last_loss, "wall_s": round(time.perf_counter() - t0, 2),
                             "log": str(work / a.name / "logs" / "train.csv")})


def killresume(a) -> None:
    import torch

    from surf_video.train.trainer import Trainer

    torch.use_deterministic_algorithms(True, warn_only=True)  # with CUBLAS_WORKSPACE_CONFIG from the script
    work = Path(a.work)

    def run(name, kill_at=None, resume=False):
        cfg = tiny_world_cfg(work / name, a.steps, a.global_batch, _nproc(), a.tiny, ckpt_every=a.ckpt_every)

        def crash(step):
            if step == kill_at:
                sys.stdout.flush()
                os._exit(3)

        trainer = Trainer(cfg, on_step_end=crash if kill_at else None)
        result = trainer.train(resume=resume)
        trainer.export()
        return trainer, result

    trainer, result = run(a.name, a.kill_at, a.resume)
    rows = {"resumed": {"step": result.step, "last_loss": result.last_loss}}
    if a.reference:
        _, ref = run(a.reference)
        rows["uninterrupted"] = {"step": ref.step, "last_loss": ref.last_loss}
    if trainer.acc.is_main_process:
        _emit(work, a.name, {"name": a.name, "distributed_type": str(trainer.acc.distributed_type),
                             "fsdp": trainer.fsdp, "processes": trainer.acc.num_processes, **rows})


# ---------------------------------------------------------------------------------------- report
def _read_json(p: Path):
    return json.loads(p.read_text()) if p.is_file() else None


def _losses(csv_path: Path) -> dict[int, float]:
    if not csv_path.is_file():
        return {}
    with open(csv_path, newline="") as fh:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(fh)}


def _weights_diff(a: Path, b: Path) -> float | None:
    from safetensors.torch import load_file

    fa, fb = a / "diffusion_pytorch_model.safetensors", b / "diffusion_pytorch_model.safetensors"
    if not (fa.is_file() and fb.is_file()):
        return None
    wa, wb = load_file(str(fa)), load_file(str(fb))
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def report(a) -> None:
    work, out = Path(a.work), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    commands = [json.loads(ln) for ln in (work / "commands.jsonl").read_text().splitlines()] \
        if (work / "commands.jsonl").is_file() else []
    res: dict = {"commands": commands, "throughput": {}, "convergence": {}, "kill_resume": {}}

    thr = {n: _read_json(work / f"thr-{n}.json") for n in ("1gpu", "ddp", "fsdp")}
    res["throughput"] = {n: r for n, r in thr.items() if r}
    base = thr["1gpu"]
    for n in ("ddp", "fsdp"):
        if base and thr[n]:
            thr[n]["speedup_vs_1gpu"] = thr[n]["samples_per_s"] / base["samples_per_s"]
            thr[n]["scaling_efficiency"] = thr[n]["samples_per_s"] / (thr[n]["processes"] * base["samples_per_s"])

    curves = {n: _losses(work / f"conv-{n}" / "logs" / "train.csv") for n in ("1gpu", "ddp", "fsdp")}
    res["convergence"] = {n: _read_json(work / f"conv-{n}.json") for n in curves}
    steps = sorted(set().union(*[set(c) for c in curves.values()]))
    with open(out / "convergence.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "loss_1gpu", "loss_ddp", "loss_fsdp"])
        for s in steps:
            w.writerow([s] + [curves[n].get(s, "") for n in ("1gpu", "ddp", "fsdp")])
    cmp = {}
    for n in ("ddp", "fsdp"):
        common = [s for s in steps if s in curves[n] and s in curves["1gpu"]]
        if common:
            d = [abs(curves[n][s] - curves["1gpu"][s]) for s in common]
            tail = common[-min(50, len(common)):]
            cmp[n] = {"steps_compared": len(common), "max_abs_loss_diff_vs_1gpu": max(d),
                      "mean_abs_loss_diff_vs_1gpu": sum(d) / len(d),
                      "mean_loss_last_50": sum(curves[n][s] for s in tail) / len(tail),
                      "mean_loss_last_50_1gpu": sum(curves["1gpu"][s] for s in tail) / len(tail),
                      "final_weights_max_abs_diff_vs_1gpu": _weights_diff(work / f"conv-{n}" / "final",
                                                                          work / "conv-1gpu" / "final")}
    res["convergence_comparison"] = cmp
    _plot(curves, out / "convergence.png")

    kr = _read_json(work / "kr-run.json")
    if kr:
        mode = "FSDP" if kr.get("fsdp") else "DDP"
        kr.update(kill_at_step=_kill_at(commands), note=f"{mode}, killed by os._exit(3) on every rank after the "
                  "kill step, resumed from the newest checkpoint; the uninterrupted run follows in the same launch")
        run_l, ref_l = _losses(work / "kr-run" / "logs" / "train.csv"), _losses(work / "kr-ref" / "logs" / "train.csv")
        common = sorted(set(run_l) & set(ref_l))
        kr["loss_log_identical"] = bool(common) and all(run_l[s] == ref_l[s] for s in common) and \
            len(run_l) == len(ref_l)
        kr["max_abs_loss_diff"] = max((abs(run_l[s] - ref_l[s]) for s in common), default=None)
        kr["final_weights_max_abs_diff"] = _weights_diff(work / "kr-run" / "final", work / "kr-ref" / "final")
        kr["final_ema_max_abs_diff"] = _weights_diff(work / "kr-run" / "final-ema", work / "kr-ref" / "final-ema")
        left = work / "kr-kill-checkpoints.txt"
        kr["checkpoints_left_by_kill"] = left.read_text().split() if left.is_file() else None
        ranks = work / "kr-kill-exit3.txt"
        kr["ranks_killed_by_os_exit_3"] = int(ranks.read_text().strip() or 0) if ranks.is_file() else None
    res["kill_resume"] = kr or {}
    (out / "train_scaling.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "commands"}, indent=1)[:6000])


def _kill_at(commands: list[dict]) -> int | None:
    for c in commands:
        if c.get("name") == "kr-kill" and "--kill-at" in c.get("command", ""):
            return int(c["command"].split("--kill-at")[1].split()[0])
    return None


def _plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for n, c in curves.items():
        if c:
            xs = sorted(c)
            ys = [c[s] for s in xs]
            k = 10  # running mean over 10 steps, the raw curve faint behind it
            sm = [sum(ys[max(0, i - k + 1):i + 1]) / len(ys[max(0, i - k + 1):i + 1]) for i in range(len(ys))]
            line, = ax.plot(xs, sm, label=n)
            ax.plot(xs, ys, color=line.get_color(), alpha=0.25, lw=0.7)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("flow-mapping loss")
    ax.set_title("refiner-tiny, procedural world, same global batch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("latents")
    p.add_argument("dir")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--tiny", action="store_true")
    p = sub.add_parser("throughput")
    for x in ("work", "name"):
        p.add_argument(x)
    p.add_argument("--latents", required=True)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--max-s", type=float, default=0, help="stop timing after this many seconds of steps (0: never)")
    p.add_argument("--tiny", action="store_true")
    for cmd in ("convergence", "killresume"):
        p = sub.add_parser(cmd)
        for x in ("work", "name"):
            p.add_argument(x)
        p.add_argument("--steps", type=int, default=300)
        p.add_argument("--global-batch", type=int, default=8)
        p.add_argument("--tiny", action="store_true")
        if cmd == "killresume":
            p.add_argument("--ckpt-every", type=int, default=25)
            p.add_argument("--kill-at", type=int, default=None)
            p.add_argument("--resume", action="store_true")
            p.add_argument("--reference", default=None)
    p = sub.add_parser("report")
    p.add_argument("work")
    p.add_argument("out")
    a = ap.parse_args()
    {"latents": make_latents, "throughput": throughput, "convergence": convergence, "killresume": killresume,
     "report": report}[a.cmd](a)


if __name__ == "__main__":
    main()
