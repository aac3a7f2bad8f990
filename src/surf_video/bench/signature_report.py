"""Reporting of the signature benchmark: JSON, the markdown table, target checks, plots, README section."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

__all__ = [
    "write_results",
    "load_results",
    "save_examples",
    "markdown_table",
    "check_targets",
    "snr_vs_flow",
    "plot_quality_vs_cost",
    "plot_k_sweep",
    "plot_examples",
    "update_readme_section",
    "render_section",
    "SECTION_TITLE",
]

SECTION_TITLE = "## Signature retention"
_BEGIN = "<!-- signature-table:begin (written by `surf eval signature --readme`) -->"
_END = "<!-- signature-table:end -->"


def write_results(result: dict, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Writes the result (without the example frames) as JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in result.items() if k != "examples"}
    if extra:
        data.update(extra)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=True) + "\n")
    os.replace(tmp, path)
    return path


def load_results(path: str | os.PathLike, examples_npz: str | os.PathLike | None = None) -> dict:
    """Reads a results JSON (and the example frames saved by :func:`save_examples`, when given)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"results: no file {p}")
    result = json.loads(p.read_text())
    if examples_npz is not None:
        with np.load(examples_npz) as z:
            result["examples"] = {k: z[k] for k in z.files}
    return result


def save_examples(result: dict, path: str | os.PathLike) -> Path:
    """Saves the example frames (method -> uint8 [n, H, W, 3]) as an npz."""
    np.savez_compressed(path, **result.get("examples", {}))
    return Path(path)


def _m(summary: dict, name: str, key: str) -> float:
    return summary.get(name, {}).get(key, {}).get("mean", float("nan"))


def _fmt(x: float, nd: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{nd}f}"


def _g(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _k_label(result: dict, name: str) -> str:
    m = next((m for m in result["methods"] if m["name"] == name), None)
    if m is None:
        return ""
    n = result["config"]["num_steps"]
    if m["kind"] == "surf":
        if m["k"] == "auto":
            sw = result["summary"][name].get("switch_mean")
            return f"auto (mean {_fmt(sw, 1)})"
        return f"{m['k']}/{n}"
    if m["kind"] == "direct":
        return f"0/{n}"
    if m["kind"] == "hlh":
        k1, k2 = result["config"]["hlh"]
        return f"R {k1}, P {k2 - k1}, R {n - k2}"
    if m["kind"] == "refined":
        cfg = result["config"]
        return f"{_k_label(result, m['source'])} + {cfg['refine_steps']} refiner steps to {cfg['refine_size']} px"
    if m["kind"] == "accel":
        share = result["summary"].get(name, {}).get("compute_share", {}).get("mean")
        ran = f", {100 * share:.0f} % of block FLOPs ran" if share is not None and math.isfinite(share) else ""
        base = f"{m['steps']} steps" if m.get("k") is None else f"{m['k']}/{n}"
        return f"{base} + {m['accel']}{ran}"
    return f"{m['steps']} steps"


def markdown_table(result: dict) -> str:
    """One row per method: cost, layout, semantics and motion (means; IoU with its 95 % half-width)."""
    s = result["summary"]
    cpu = (result.get("cpu_timing") or {}).get("seconds_per_video", {})
    thr = (result.get("cpu_timing") or {}).get("threads")
    head = ("| method | k / steps | forwards | GFLOPs / video | s / video | "
            + (f"CPU s / video ({thr} threads) | " if cpu else "")
            + "object IoU | fg IoU | SSIM | attr. agree (ref) | prompt all-correct | track err (px) | direction agree "
            "| latent corr | latent rel. err |")
    lines = [head, "|" + "---|" * (15 if cpu else 14)]
    for m in result["methods"]:
        n = m["name"]
        iou = s[n]["iou"]
        lines.append(
            f"| {n} | {_k_label(result, n)} | {_fmt(_m(s, n, 'forwards'), 1)} | {_g(_m(s, n, 'flops') / 1e9)} | "
            f"{_fmt(_m(s, n, 'seconds'), 3)} | " + (f"{_fmt(cpu.get(n, float('nan')), 2)} | " if cpu else "")
            + f"{_fmt(iou['mean'])} ± {_fmt(iou['ci95'])} | "
            f"{_fmt(_m(s, n, 'fg_iou'))} | {_fmt(_m(s, n, 'ssim'))} | {_fmt(_m(s, n, 'attr_agree_ref'))} | "
            f"{_fmt(100 * _m(s, n, 'prompt_all_correct'), 1)} % | {_fmt(_m(s, n, 'track_err_px'))} | "
            f"{_fmt(_m(s, n, 'dir_agree'))} | {_fmt(_m(s, n, 'latent_corr'), 3)} | {_fmt(_m(s, n, 'latent_rel_err'), 3)} |"
        )
    return "\n".join(lines)


def _sweep(result: dict, form: str) -> list[tuple[int, str]]:
    """(k, method name) of a form's sweep, k = 0 and k = N mapped to the shared runs."""
    cfg = result["config"]
    n = cfg["num_steps"]
    names = {m["name"] for m in result["methods"]}
    out = []
    for k in sorted(set(cfg["k_values"]) | {cfg["surf_k"]}):
        name = "direct_lowres" if k == 0 else "reference" if k == n else f"surf_{form}_k{k}"
        if name in names:
            out.append((k, name))
    return out


def _interp_at_cost(points: list[tuple[float, float]], cost: float) -> float:
    """IoU of a sweep (cost, IoU points) linearly interpolated at ``cost`` (clamped to the ends)."""
    pts = sorted(points)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return float(np.interp(cost, xs, ys))


def check_targets(result: dict, metric: str = "iou") -> list[dict]:
    """The issues' targets, each ``{"target", "measured", "held"}`` (held is None when not measurable).

    Args:
        metric: the layout metric the targets are read on: ``'iou'`` (object-mask IoU, as the issues set them)
            or a proxy such as ``'latent_corr'`` (the thresholds were set for IoU and are not calibrated for it).
    """
    lab = {"iou": "object IoU", "latent_corr": "latent correlation", "ssim": "SSIM"}.get(metric, metric)
    short = {"iou": "iou", "latent_corr": "lcorr", "ssim": "ssim"}[metric]
    s = result["summary"]
    cfg = result["config"]
    k = cfg["surf_k"]
    surf = f"surf_flow_k{k}"
    out = []

    def add(target, measured, held):
        out.append({"target": target, "measured": measured, "held": None if held is None else bool(held)})

    if surf in s:
        iou, ref_ad, ad = _m(s, surf, metric), _m(s, "reference", "prompt_all_correct"), _m(s, surf, "prompt_all_correct")
        add(f"SURF (k={k}, flow) {lab} >= 0.8", f"{_fmt(iou)}", iou >= 0.8 if math.isfinite(iou) else None)
        if "direct_lowres" in s:
            d = _m(s, "direct_lowres", metric)
            add(f"SURF {lab} >= direct low-res + 0.2", f"{_fmt(iou)} vs {_fmt(d)} (+{_fmt(iou - d)})",
                iou - d >= 0.2 if math.isfinite(iou - d) else None)
        add("SURF (k=%d, flow) prompt adherence (all attributes right) within 3 points of the reference" % k, f"{_fmt(100 * ad, 1)} % vs {_fmt(100 * ref_ad, 1)} %",
            ad >= ref_ad - 0.03 if math.isfinite(ad) and math.isfinite(ref_ad) else None)
        for st in cfg["fewer_steps"]:
            name = f"steps{st}"
            if name not in s:
                continue
            c_s, c_b = _m(s, surf, "flops"), _m(s, name, "flops")
            i_b = _m(s, name, metric)
            cheaper = c_s <= c_b
            add(f"SURF beats {st} steps at R on layout ({lab}) at equal or lower cost",
                f"{lab} {_fmt(iou)} vs {_fmt(i_b)}; GFLOPs {_g(c_s / 1e9)} vs {_g(c_b / 1e9)}",
                (iou > i_b and cheaper) if math.isfinite(iou) and math.isfinite(i_b) else None)
    if "snr" in cfg["forms"] and "flow" in cfg["forms"]:
        rows = snr_vs_flow(result)
        if rows:
            finite = all(math.isfinite(r[f"{short}_snr"]) and math.isfinite(r[f"{short}_flow"]) for r in rows)
            held = all(r[f"{short}_snr"] > r[f"{short}_flow"] and r["flops_snr"] <= r["flops_flow"] for r in rows) if finite else None
            ks, kf = f"{short}_snr", f"{short}_flow"
            desc = "; ".join(f"k={r['k']}: {_fmt(r[ks])} vs {_fmt(r[kf])}" for r in rows)
            add(f"'snr' beats 'flow' on {lab} at every k, at equal or lower cost", desc, held)
            ad_ok = all(r["adherence_snr"] >= r["adherence_flow"] - 0.03 for r in rows) if finite else None
            wins = {
                f"layout ({lab} higher)": [r[f"{short}_snr"] > r[f"{short}_flow"] for r in rows],
                "semantics (attribute agreement not lower)": [r["attr_snr"] >= r["attr_flow"] for r in rows],
                "motion (track error lower)": [r["track_snr"] < r["track_flow"] for r in rows],
            }
            add("'snr' wins on layout, semantics and motion at every k (issue 11's condition to make it the default)",
                "; ".join(f"{key}: {sum(v)}/{len(v)} k" for key, v in wins.items()),
                all(all(v) for v in wins.values()) if all(
                    math.isfinite(r[f"{m}_{f}"]) for r in rows for m in (short, "attr", "track") for f in ("snr", "flow"))
                else None)
            add("'snr' keeps prompt adherence (within 3 points of 'flow' at every k)",
                "; ".join(f"k={r['k']}: {_fmt(100 * r['adherence_snr'], 1)} vs {_fmt(100 * r['adherence_flow'], 1)} %"
                          for r in rows), ad_ok)
    if cfg.get("auto"):
        for form in cfg["forms"]:
            name = f"surf_{form}_auto"
            if name not in s:
                continue
            pts = [(_m(s, nm, "flops"), _m(s, nm, metric)) for _, nm in _sweep(result, form)]
            pts = [p for p in pts if all(math.isfinite(v) for v in p)]
            ai, ac = _m(s, name, metric), _m(s, name, "flops")
            cheaper = [p for p in pts if p[0] <= ac * (1 + 1e-9)]
            best = max((p[1] for p in cheaper), default=float("nan"))
            interp = _interp_at_cost(pts, ac) if pts else float("nan")
            add(f"auto ({form}) within 0.02 {lab} of the best fixed k at equal or lower mean cost",
                f"auto {lab} {_fmt(ai)} at {_g(ac / 1e9)} GFLOPs (mean k {_fmt(s[name].get('switch_mean'), 1)}); "
                f"best fixed k no costlier: {_fmt(best)}; sweep interpolated at that cost: {_fmt(interp)}",
                ai >= max(best, interp) - 0.02 if math.isfinite(ai) and math.isfinite(best) else None)
    return out


def snr_vs_flow(result: dict) -> list[dict]:
    """Per switch step of the sweep (0 < k < N): 'snr' against 'flow' on layout, semantics, motion and cost."""
    s = result["summary"]
    rows = []
    for k, name in _sweep(result, "flow"):
        snr = f"surf_snr_k{k}"
        if not name.startswith("surf_") or snr not in s:
            continue
        row = {"k": k}
        for key, short in (("iou", "iou"), ("latent_corr", "lcorr")):  # paired over videos: snr - flow
            d = np.asarray([x["methods"][snr][key] - x["methods"][name][key] for x in result.get("samples", [])
                            if snr in x["methods"] and name in x["methods"]], dtype=np.float64)
            d = d[np.isfinite(d)]
            row[f"d{short}"] = float(d.mean()) if d.size else float("nan")
            row[f"d{short}_ci"] = float(1.96 * d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else float("nan")
            row[f"d{short}_wins"] = f"{int((d > 0).sum())}/{d.size}"
        for key, short in (("iou", "iou"), ("ssim", "ssim"), ("latent_corr", "lcorr"), ("attr_agree_ref", "attr"),
                           ("prompt_all_correct", "adherence"), ("track_err_px", "track"), ("dir_agree", "dir"),
                           ("flops", "flops"), ("forwards", "forwards")):
            row[f"{short}_flow"] = _m(s, name, key)
            row[f"{short}_snr"] = _m(s, snr, key)
        rows.append(row)
    return rows


def _snr_table(result: dict) -> str:
    rows = snr_vs_flow(result)
    if not rows:
        return ""
    lines = ["| k | IoU flow / snr | SSIM flow / snr | latent corr flow / snr | attr. agree flow / snr | "
             "all-correct flow / snr | track err px flow / snr | direction flow / snr | forwards flow / snr | "
             "paired latent corr snr - flow (videos where snr is higher) |",
             "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['k']} | {_fmt(r['iou_flow'])} / {_fmt(r['iou_snr'])} | {_fmt(r['ssim_flow'])} / {_fmt(r['ssim_snr'])} | "
            f"{_fmt(r['lcorr_flow'], 3)} / {_fmt(r['lcorr_snr'], 3)} | "
            f"{_fmt(r['attr_flow'])} / {_fmt(r['attr_snr'])} | {_fmt(100 * r['adherence_flow'], 1)} / "
            f"{_fmt(100 * r['adherence_snr'], 1)} % | {_fmt(r['track_flow'])} / {_fmt(r['track_snr'])} | "
            f"{_fmt(r['dir_flow'])} / {_fmt(r['dir_snr'])} | {_fmt(r['forwards_flow'], 1)} / {_fmt(r['forwards_snr'], 1)} | "
            f"{r['dlcorr']:+.3f} ± {_fmt(r['dlcorr_ci'], 3)} ({r['dlcorr_wins']}) |"
        )
    return "\n".join(lines)


_COLORS = {"flow": "tab:blue", "paper": "tab:orange", "snr": "tab:green"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_quality_vs_cost(result: dict, path: str | os.PathLike) -> Path:
    """Object IoU (left) and the decoder-free latent correlation (right) with the reference against GFLOPs per
    video, one point per method (95 % half-widths as error bars)."""
    plt = _plt()
    s = result["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    for ax, metric, label in ((axes[0], "iou", "object-mask IoU with the reference (at P)"),
                              (axes[1], "latent_corr", "latent correlation with the reference (at P)")):
        for m in result["methods"]:
            n = m["name"]
            st = s[n].get(metric, {})
            x, y, e = _m(s, n, "flops") / 1e9, st.get("mean", float("nan")), st.get("ci95", float("nan"))
            if not math.isfinite(y):
                continue
            color = _COLORS.get(m.get("form"), {"steps": "tab:red", "direct": "black", "hlh": "tab:purple"}.get(m["kind"]))
            marker = "*" if m["k"] == "auto" else "o"
            ax.errorbar(x, y, yerr=e if math.isfinite(e) else None, fmt=marker, color=color,
                        ms=8 if marker == "*" else 5, capsize=2)
            ax.annotate(n.replace("surf_", ""), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("transformer GFLOPs per video (CFG counted)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if not ax.lines and not ax.collections:
            ax.text(0.5, 0.5, "undefined: no object found in any video", ha="center", transform=ax.transAxes)
    fig.suptitle(f"Signature retention vs cost ({result['num_samples']} videos, {result.get('model', '')})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_k_sweep(result: dict, path: str | os.PathLike) -> Path:
    """The k sweep per re-noise form, 'auto' as a star: object IoU against k and against cost (top), SSIM against
    k and the decoder-free latent correlation against cost (bottom)."""
    plt = _plt()
    s = result["summary"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    panels = [(axes[0][0], "iou", "k"), (axes[0][1], "iou", "flops"), (axes[1][0], "ssim", "k"),
              (axes[1][1], "latent_corr", "flops")]
    labels = {"iou": "object-mask IoU with the reference", "ssim": "SSIM with the reference",
              "attr_agree_ref": "attribute agreement with the reference",
              "latent_corr": "latent correlation with the reference (at P)"}
    for form in result["config"]["forms"]:
        pts = _sweep(result, form)
        c = _COLORS.get(form)
        auto = f"surf_{form}_auto"
        for ax, metric, x in panels:
            ys = [_m(s, nm, metric) for _, nm in pts]
            xs = [k for k, _ in pts] if x == "k" else [_m(s, nm, "flops") / 1e9 for _, nm in pts]
            ax.plot(xs, ys, "o-", color=c, label=form)
            if auto in s and math.isfinite(_m(s, auto, metric)):
                ax_x = s[auto].get("switch_mean", float("nan")) if x == "k" else _m(s, auto, "flops") / 1e9
                ax.plot([ax_x], [_m(s, auto, metric)], "*", color=c, ms=14, label=f"{form} auto")
    for ax, metric, x in panels:
        ax.set_xlabel("switch step k (0 = direct low-res, N = reference)" if x == "k"
                      else "transformer GFLOPs per video")
        ax.set_ylabel(labels[metric])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Switch-step sweep per re-noise form ({result['num_samples']} videos, {result.get('model', '')})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_examples(result: dict, path: str | os.PathLike, methods: list[str] | None = None) -> Path | None:
    """Middle frames of the first samples (rows) for a few methods (columns), at the scoring size."""
    ex = result.get("examples") or {}
    if not ex:
        return None
    plt = _plt()
    if methods is None:  # a readable subset: the reference, the baselines and the forms at SURF's k
        k = (result.get("config") or {}).get("surf_k", 10)
        methods = ["reference", "direct_lowres", f"surf_flow_k{k}", f"surf_paper_k{k}", f"surf_snr_k{k}",
                   "surf_flow_auto", "surf_snr_auto"] + [n for n in ex if n.startswith(("steps", "hlh"))]
    names = [n for n in methods if n in ex] or list(ex)
    rows = min(len(v) for v in ex.values())
    fig, axes = plt.subplots(rows, len(names), figsize=(1.6 * len(names), 1.8 * rows), squeeze=False)
    for j, n in enumerate(names):
        for i in range(rows):
            axes[i][j].imshow(ex[n][i])
            axes[i][j].set_xticks([])
            axes[i][j].set_yticks([])
        axes[0][j].set_title(n.replace("surf_", ""), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def render_section(result: dict, command: str, files: dict[str, str]) -> str:
    """The generated part of the README section: how it was made, the table, snr vs flow, targets."""
    cfg = result["config"]
    lines = [
        f"Model: **{result.get('model', 'unknown')}**. {result['num_samples']} videos "
        f"({len(result.get('prompts', [])) or '?'} prompts x {len(cfg['seeds'])} seed(s)), N = {cfg['num_steps']} steps, "
        f"R = {cfg['base_size']} px, P = {cfg['preview_size']} px, {cfg['num_frames']} frames, "
        f"CFG {cfg['guidance_scale']}, device {result['device']} ({result['torch_threads']} threads), "
        f"{result['seconds_total'] / 60:.1f} min in all (sampling, decoding and scoring)."
        + ("" if result.get("complete", True) else
           f" **Stopped early by its time budget: {result['num_samples']} of {result.get('planned_samples')} videos.**"),
        "",
        f"Command: `{command}`",
        "",
        "Scores are against the reference (the base at R, all N steps) at the preview size P; layout = object-mask"
        " IoU per frame (per caption object, 95 % half-width after ±), foreground IoU, SSIM; semantics = agreement"
        " of the evaluator's per-object attributes with the reference's, and prompt adherence (all attributes"
        " right); motion = centroid track error in pixels at P and direction agreement; cost per video.",
        "",
        markdown_table(result),
        "",
    ]
    ct = result.get("cpu_timing")
    if ct:
        lines += [f"CPU seconds: each method timed once on the CPU with {ct['threads']} torch threads on "
                  f"{ct['num_prompts']} prompts (one batch; 'auto' one video at a time), denoising only. At these "
                  f"figures the whole run's denoising would take {ct['projected_minutes']:.1f} min on "
                  f"{ct['threads']} CPU threads (decode and scoring not included).", ""]
    if result.get("refiner"):
        r = result["refiner"]
        lines += [f"'+refiner' rows: each SURF preview refined to {r['size']} px with {r['steps']} flow-map steps "
                  f"(SURFPipeline.refine, refiner `{result.get('refiner_path', '?')}`, "
                  f"{r['flops_per_forward'] / 1e9:.3g} GFLOPs per refiner forward), decoded at {r['size']} px and "
                  "area-downsized to P for scoring; cost = the preview's plus the refiner's.", ""]
    if result.get("accelerations"):
        from .signature_accel import verdict_lines

        lines += ["Accelerations, each against its plain counterpart (helped: at most 0.95x the cost, counted FLOPs for "
                  "a cache and seconds for compile, with a signature loss (layout or SSIM) of at most 0.02; hurt: loss "
                  "above 0.02, or slower; broke something: loss above 0.2, an error or no output):", ""]
        lines += verdict_lines(result) + [""]
    snr = _snr_table(result)
    if snr:
        lines += ["'snr' against 'flow' per switch step:", "", snr, ""]
    lines += _target_table(result, "iou", "Targets (computed from the numbers above):")
    iou_defined = any(t["held"] is not None and "IoU" in t["target"] for t in check_targets(result))
    if not iou_defined and any(math.isfinite(_m(result["summary"], n, "latent_corr")) for n in result["summary"]):
        lines += _target_table(
            result, "latent_corr",
            "The same targets read on the decoder-free latent correlation instead of object IoU, because IoU is "
            "undefined here (no object was found in any video). A proxy: the thresholds (0.8, +0.2, 0.02) were set "
            "for IoU and are not calibrated for it.")
    if files:
        lines.append("Files: " + ", ".join(f"[{k}]({v})" for k, v in files.items()))
    return "\n".join(lines)


def _target_table(result: dict, metric: str, title: str) -> list[str]:
    lines = [title, "", "| target | measured | held |", "|---|---|---|"]
    for t in check_targets(result, metric):
        held = "n/a" if t["held"] is None else ("yes" if t["held"] else "**no**")
        lines.append(f"| {t['target']} | {t['measured']} | {held} |")
    return lines + [""]


def update_readme_section(readme: str | os.PathLike, generated: str, intro: str = "") -> Path:
    """Puts ``generated`` between the section's markers in ``readme``, creating the section (appended at the
    end) or the file when missing; text of the section outside the markers, and other sections, are kept."""
    p = Path(readme)
    text = p.read_text() if p.is_file() else "# Benchmarks\n"
    block = f"{_BEGIN}\n{generated.rstrip()}\n{_END}"
    if _BEGIN in text and _END in text:
        pre, rest = text.split(_BEGIN, 1)
        post = rest.split(_END, 1)[1]
        text = pre + block + post
    elif SECTION_TITLE in text:
        head, tail = text.split(SECTION_TITLE, 1)
        nxt = tail.find("\n## ")
        body, after = (tail, "") if nxt < 0 else (tail[:nxt], tail[nxt:])
        text = head + SECTION_TITLE + body.rstrip() + "\n\n" + block + "\n" + after
    else:
        text = text.rstrip() + f"\n\n{SECTION_TITLE}\n\n{intro.strip()}\n\n{block}\n"
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, p)
    return p
