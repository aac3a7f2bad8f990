"""Plot the guidance sweep of the SURF-Mini cmd5 base on development prompts (cmd7_sweep/, cmd8_sweep/, cmd5_base/).

Usage (repo root): python benchmarks/results/mini_v6/plot_sweep.py  ->  benchmarks/results/mini_v6/guidance_sweep.png
Each point: share of prompts with every attribute right, pooled over the development offsets measured
(1000 / 2000 / 3000, 100 prompts each); bars: one binomial standard error.
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def pooled(files):
    ok = n = 0
    for f in files:
        a = json.loads(f.read_text())["adherence"]
        ok += round(a["all_correct"] * a["n"])
        n += a["n"]
    return ok / n, (ok / n * (1 - ok / n) / n) ** 0.5, n


def main():
    sweeps = [HERE / "cmd7_sweep", HERE / "cmd8_sweep"]
    rows = {}
    for label, pattern in (("flow shift 3", "g{g}_o*.json"), ("flow shift 5", "g{g}sh5_o*.json")):
        for g in (2, 3, 4, 5, 6, 7):
            files = [f for d in sweeps for f in sorted(d.glob(pattern.format(g=g)))]
            if label == "flow shift 3" and g == 5:
                files.append(HERE / "cmd5_base" / "eval_d1.json")  # CFG 5 at offset 1000: the command's own eval
            if label == "flow shift 5" and g == 5:
                files = [f for d in sweeps for f in sorted(d.glob("sh5_o*.json"))]
            if files:
                rows.setdefault(label, []).append((g, *pooled(files)))
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, pts in rows.items():
        g, m, se, n = zip(*pts)
        ax.errorbar(g, [100 * x for x in m], yerr=[100 * x for x in se], marker="o", capsize=3, label=label)
        for gi, mi, ni in zip(g, m, n):
            ax.annotate(f"n={ni}", (gi, 100 * mi), textcoords="offset points", xytext=(4, -12), fontsize=7)
    ax.set_xlabel("classifier-free guidance scale (40 steps, 128 px)")
    ax.set_ylabel("development prompts with every attribute right (%)")
    ax.set_title("SURF-Mini base (session 8, cmd5): guidance sweep")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / "guidance_sweep.png", dpi=120)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
