"""Tables, charts and the README section for the speed benchmark's JSON results."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

__all__ = ["TARGET_SPEEDUPS", "write_json", "load_results", "markdown_tables", "plot_result", "update_readme"]

#: the paper's speed-ups (issue 6): (model, target) -> minimum SURF speed-up over the baseline
TARGET_SPEEDUPS = {("wan14b", "720p"): 12.5, ("wan14b", "1080p"): 43.0, ("hunyuan13b", "720p"): 8.7}
#: refiner step-time targets in seconds
TARGET_REFINER_STEP = {"720p": 1.0, "1080p": 2.5}
_SECTION = "## Speed"


def write_json(result: dict, path: str | os.PathLike) -> Path:
    """Writes ``result`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_results(folder: str | os.PathLike) -> list[tuple[Path, dict]]:
    return [(p, json.loads(p.read_text())) for p in sorted(Path(folder).glob("speed_*.json"))]


def _s(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _label(res: dict) -> str:
    from .speed_accel_report import accel_label  # one naming of acceleration sets (quantize included)

    extras = accel_label(res["config"])
    return res["model"] + ("" if extras == "eager" else f" ({extras})")


def _base_tables(items: list[tuple[Path, dict]]) -> list[str]:
    lines = ["| model | target | frames | baseline (s) | SURF stage 1 | stage 2 | refine | SURF total (s) | speed-up "
             "| paper | PFLOPs baseline / SURF (ratio) | VAE decode (s) | result |", "|" + "---|" * 13]
    util = ["| model | target | stage | latent [B,C,F,H,W] | forwards | s / forward | TFLOP/s | % of bf16 peak "
            "| how measured |", "|" + "---|" * 9]
    for path, res in items:
        for run in res["runs"]:
            b, st = run["baseline"], run["surf"]
            goal = TARGET_SPEEDUPS.get((res["model"], run["target"]))
            met = "-" if goal is None or res["config"].get("compile") or res["config"].get("batch_cfg") else (
                "met" if run["speedup"] >= goal else "missed")
            dec = run.get("vae_decode", {}).get("seconds")
            surf_pf = sum(x["flops"] for x in st.values()) / 1e15
            lines.append(
                f"| [{_label(res)}]({path.as_posix()}) | {run['target']} ({run['height']}x{run['width']}) | {run['num_frames']} "
                f"| {_s(b['seconds'])} | {_s(st['stage1']['seconds'])} | {_s(st['stage2']['seconds'])} "
                f"| {_s(st['refine']['seconds'])} | {_s(run['surf_seconds'])} | **{run['speedup']:.1f}x** "
                f"| {'-' if goal is None else f'>= {goal}x'} | {b['flops'] / 1e15:,.0f} / {surf_pf:.1f} "
                f"({b['flops'] / 1e15 / surf_pf:.1f}x) | {'-' if dec is None else _s(dec)} | {met} |")
            for name, s in (("baseline", b), ("SURF stage 1", st["stage1"]), ("SURF stage 2", st["stage2"]),
                            ("refiner", st["refine"])):
                util.append(f"| {_label(res)} | {run['target']} | {name} | {s['latent_shape']} | {s['forwards']} "
                            f"| {s['sec_per_forward']:.3f} | {s['tflops_per_s']:.0f} | {_pct(s['fraction_of_peak'])} "
                            f"| {s['note']} |")
    return lines + ["", "Per stage (transformer time; FLOPs counted analytically, `surf_video.bench.flops`):", ""] + util


def _refiner_tables(items: list[tuple[Path, dict]]) -> list[str]:
    lines = ["| refiner | target | temporal window (latent frames) | s / step | TFLOP/s | % of bf16 peak "
             "| speed-up over full attention | step target | result |", "|" + "---|" * 9]
    for path, res in items:
        for run in res["runs"]:
            goal = TARGET_REFINER_STEP.get(run["target"])
            for r in run["windows"]:
                win = "full" if r["temporal_window_size"] is None else str(r["temporal_window_size"])
                sp = r.get("speedup_over_full_attention")
                met = "-" if goal is None else ("met" if r["sec_per_forward"] <= goal else "missed")
                lines.append(f"| [{res['model']}]({path.as_posix()}) | {run['target']} ({run['height']}x{run['width']}, "
                             f"{run['num_frames']} frames) | {win} | {r['sec_per_forward']:.3f} "
                             f"| {r['tflops_per_s']:.0f} | {_pct(r['fraction_of_peak'])} "
                             f"| {'-' if sp is None else f'{sp:.2f}x'} | {'-' if goal is None else f'<= {goal} s'} "
                             f"| {met} |")
    return lines


def _profiles(items) -> list[str]:
    out = []
    for path, res in items:
        for run in res["runs"]:
            for prof in run.get("profiles", []):
                kinds = ", ".join(f"{k} {v['share']:.0%}" for k, v in prof["by_kind"].items())
                out.append(f"- {res['model']} {run['target']}, {prof['module']} forward at {prof['latent_shape']} "
                           f"({_pct(prof['fraction_of_peak'])} of peak): GPU time {prof['gpu_ms']:.0f} ms = {kinds}; "
                           f"top kernel: `{prof['top_kernels'][0]['name'][:90]}` "
                           f"({prof['top_kernels'][0]['share']:.0%})")
    return out


def markdown_tables(items: list[tuple[Path, dict]]) -> str:
    """The tables for every result (base-model runs, refiner runs, profiles), as markdown."""
    base = [(p, r) for p, r in items if r["family"] != "refiner"]
    ref = [(p, r) for p, r in items if r["family"] == "refiner"]
    parts = []
    if base:
        parts += ["### Baseline vs SURF", ""] + _base_tables(base) + [""]
    if ref:
        parts += ["### Refiner step time", ""] + _refiner_tables(ref) + [""]
    prof = _profiles(items)
    if prof:
        parts += ["### Where the time goes (torch.profiler, one forward)", ""] + prof + [""]
    envs = {(r["env"]["gpu"], r["env"]["torch"], r["env"]["diffusers"]) for _, r in items}
    parts += ["Environment: " + "; ".join(f"{g}, torch {t}, diffusers {d}" for g, t, d in sorted(envs)), ""]
    parts += ["Commands:", ""] + [f"- `{p.name}`: `{r['env']['command']}` (commit {str(r['env']['git_commit'])[:10]}, "
                                   f"bf16 matmul peak {r['env']['bf16_matmul_peak_tflops'] or 0:.0f} TFLOP/s)"
                                   for p, r in items] + [""]
    return "\n".join(parts)


def plot_result(result: dict, png: str | os.PathLike) -> Path | None:
    """Bar chart of per-stage seconds, baseline vs SURF (stacked), one panel per target."""
    if result["family"] == "refiner":
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4), squeeze=False)
    colors = ["#8c8c8c", "#4c72b0", "#55a868", "#c44e52", "#333333"]
    for ax, run in zip(axes[0], runs):
        st = run["surf"]
        names = ["baseline", "SURF\nstage 1", "SURF\nstage 2", "SURF\nrefine", "SURF\ntotal"]
        vals = [run["baseline"]["seconds"], st["stage1"]["seconds"], st["stage2"]["seconds"], st["refine"]["seconds"],
                run["surf_seconds"]]
        bars = ax.bar(range(len(vals)), vals, color=colors)
        for bar, v in zip(bars, vals):  # log axis: print each value so small stages stay readable
            ax.text(bar.get_x() + bar.get_width() / 2, v * 1.08, _s(v), ha="center", va="bottom", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(min(vals) / 2, max(vals) * 3)
        ax.set_xticks(range(len(vals)), names, fontsize=8)
        ax.set_ylabel("transformer seconds (log scale)")
        ax.set_title(f"{result['model']} {run['target']}, {run['num_frames']} frames: {run['speedup']:.1f}x")
    fig.suptitle(f"{result['env']['gpu']}, bf16, random weights")
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def update_readme(readme: str | os.PathLike, results_dir: str | os.PathLike, intro: str = "") -> Path:
    """Rewrites the ``## Speed`` section of ``readme`` (creating the file) from ``results_dir``'s JSONs.

    Other sections (``## Signature`` ...) are kept as they are.
    """
    readme = Path(readme)
    items = load_results(results_dir)
    rel = os.path.relpath(results_dir, readme.parent)
    items_rel = [(Path(rel) / p.name, r) for p, r in items]
    body = "\n".join([_SECTION, "", intro.strip(), "", markdown_tables(items_rel)]).rstrip() + "\n"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Speed\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: body + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + body
    readme.write_text(text)
    return readme
