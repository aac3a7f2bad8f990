"""Acceleration rows of the speed benchmark: each row against the eager baseline and like for like.

``surf bench speed`` writes one JSON per acceleration set (``speed_wan14b_compile.json``, ...), each timing
the baseline and SURF with the same accelerations. This module puts those rows side by side with the
eager row of the same run folder, so two ratios stay visible:

- *like for like*: SURF with acceleration X against the baseline with X (what SURF adds on top of X);
- *against eager*: SURF with X against the eager baseline (what a user gains overall; issue 12's target).

``python -m surf_video.bench.speed_accel_report FOLDER [--png PATH]`` prints the markdown table (and
draws the chart). Rows are found recursively, so one folder can hold the parts of a multi-GPU command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["accel_label", "accel_rows", "effect", "accel_markdown", "plot_accel", "main"]

#: issue 12's targets: SURF stacked with the best accelerations against the eager baseline
STACK_TARGETS = {"720p": 20.0, "1080p": 60.0}


def accel_label(config: dict) -> str:
    """``"compile + batch_cfg + fp8"`` for a result's config (``"eager"`` when none is on)."""
    parts = [k for k in ("compile", "batch_cfg") if config.get(k)]
    parts += [v for v in (config.get("attention_backend"), config.get("quantize")) if v]
    parts += [f"cache {config['cache']}"] if config.get("cache") else []
    return " + ".join(parts) or "eager"


def accel_rows(folder, model: str = "wan14b") -> list[dict]:
    """One dict per (acceleration set, target) of ``model`` under ``folder`` (a path or a list of them), with
    both ratios. A row whose run timed its own eager baseline (``--eager-baseline``) is compared with that one
    (same process); the others with the eager row found in the folders.

    Raises:
        ValueError: when no eager baseline is known for a target that an accelerated row has.
    """
    rows, eager = [], {}
    folders = [folder] if isinstance(folder, (str, Path)) else list(folder)
    for p in sorted(q for f in folders for q in Path(f).rglob("speed_*.json")):
        res = json.loads(p.read_text())
        if res.get("model") != model:
            continue
        label = accel_label(res["config"])
        for run in res["runs"]:
            st = run["surf"]
            row = {"label": label, "target": run["target"], "file": str(p), "gpu": res["env"]["gpu"],
                   "date": res["env"].get("date"), "baseline_s": run["baseline"]["seconds"],
                   "baseline_tflops": run["baseline"].get("tflops_per_s"), "surf_s": run["surf_seconds"],
                   "stage1_s": st["stage1"]["seconds"], "stage2_s": st["stage2"]["seconds"],
                   "refine_s": st["refine"]["seconds"], "like_for_like": run["speedup"],
                   "eager_s": (run.get("baseline_eager") or {}).get("seconds")}  # fmt: skip
            rows.append(row)
            if label == "eager":
                eager[run["target"]] = row
    for row in rows:
        ref = eager.get(row["target"])
        if ref is None:
            raise ValueError(f"no eager {model} row for {row['target']} under {folder}; run `surf bench speed` without accelerations there")
        eager_base = row["eager_s"] or ref["baseline_s"]  # the run's own eager baseline when it timed one
        row["baseline_vs_eager"] = eager_base / row["baseline_s"]
        row["surf_vs_eager_baseline"] = eager_base / row["surf_s"]
        row["surf_vs_eager_surf"] = ref["surf_s"] / row["surf_s"]
    return sorted(rows, key=lambda r: (r["target"], r["label"] != "eager", -r["surf_vs_eager_baseline"]))


def effect(row: dict, tol: float = 0.03) -> str:
    """'helped' / 'hurt' / 'no effect' (within ``tol``) of a row's accelerations on SURF's seconds."""
    if row["label"] == "eager":
        return "-"
    x = row["surf_vs_eager_surf"]
    return "helped" if x > 1 + tol else "hurt" if x < 1 - tol else "no effect"


def accel_markdown(rows: list[dict]) -> str:
    head = ("| target | accelerations | baseline (s) | baseline vs eager | SURF (s) | stage 1 / 2 / refine (s) "
            "| SURF vs same-accel baseline | SURF vs eager SURF | **SURF vs eager baseline** | on SURF | issue 12 target (best row) |")
    lines = [head, "|" + "---|" * 11]
    best = {}
    for r in rows:
        if r["label"] != "eager" and r["surf_vs_eager_baseline"] > best.get(r["target"], (0, None))[0]:
            best[r["target"]] = (r["surf_vs_eager_baseline"], id(r))
    for r in rows:
        tgt = STACK_TARGETS.get(r["target"])
        verdict = "-" if tgt is None or best.get(r["target"], (0, None))[1] != id(r) else (
            f">= {tgt:.0f}x: {'met' if r['surf_vs_eager_baseline'] >= tgt else 'missed'}")
        lines.append(
            f"| {r['target']} | {r['label']} | {r['baseline_s']:,.0f} | {r['baseline_vs_eager']:.2f}x | {r['surf_s']:.1f} "
            f"| {r['stage1_s']:.1f} / {r['stage2_s']:.1f} / {r['refine_s']:.1f} | {r['like_for_like']:.2f}x "
            f"| {r['surf_vs_eager_surf']:.2f}x | **{r['surf_vs_eager_baseline']:.1f}x** | {effect(r)} | {verdict} |"
        )
    return "\n".join(lines)


def plot_accel(rows: list[dict], png: str | Path) -> Path:
    """Horizontal bars: SURF seconds per acceleration set, one panel per target, eager baseline noted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = sorted({r["target"] for r in rows})
    fig, axes = plt.subplots(1, len(targets), figsize=(6 * len(targets), 0.5 * len(rows) + 2), squeeze=False)
    for ax, t in zip(axes[0], targets):
        rs = [r for r in rows if r["target"] == t]
        eager_base = next(r["baseline_s"] for r in rs if r["label"] == "eager")
        parts = [("stage1_s", "#4c72b0", "stage 1"), ("stage2_s", "#55a868", "stage 2"), ("refine_s", "#c44e52", "refine")]
        left = [0.0] * len(rs)
        for key, color, name in parts:
            vals = [r[key] for r in rs]
            ax.barh(range(len(rs)), vals, left=left, color=color, label=name)
            left = [a + b for a, b in zip(left, vals)]
        for i, r in enumerate(rs):
            ax.text(left[i] * 1.01, i, f"{r['surf_vs_eager_baseline']:.1f}x", va="center", fontsize=8)
        ax.set_yticks(range(len(rs)), [r["label"] for r in rs], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, max(left) * 1.2)
        ax.set_xlabel("SURF transformer seconds (label: speed-up over the eager baseline)")
        ax.set_title(f"Wan 2.1 14B {t}: eager baseline {eager_base:,.0f} s")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    fig.suptitle(f"{rows[0]['gpu']}, bf16, random weights")
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="+", help="result folders (searched recursively)")
    p.add_argument("--model", default="wan14b")
    p.add_argument("--png", default=None)
    args = p.parse_args(argv)
    rows = accel_rows(args.folder, args.model)
    print(accel_markdown(rows))
    if args.png:
        plot_accel(rows, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
