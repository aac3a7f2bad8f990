"""Acceleration rows of the signature benchmark (issue 12, ``surf eval signature --accelerations LIST``).

For each acceleration A the benchmark adds two rows, scored against the *unaccelerated* reference:

- ``reference+A``: A on the reference schedule (the base alone, all N steps at R);
- ``surf_flow_k<k>+A``: SURF at the default switch step with the flow re-noise, plus A.

Both run through ``SURFPipeline.__call__`` (the path users run, which resets a cache's state at the switch)
with A applied by :meth:`SURFPipeline.enable_accelerations` (:mod:`surf_video.pipelines.accel`) and removed
by ``disable_accelerations`` before anything else runs, so the plain rows are unaffected (tested
bit-for-bit).

Accelerations (``name[:param[:param]]``):

- ``fbcache[:THRESHOLD]``: diffusers ``FirstBlockCacheConfig(threshold=0.05)``;
- ``taylorseer[:INTERVAL[:WARMUP]]``: ``TaylorSeerCacheConfig(cache_interval=4, disable_cache_before_step=3,
  max_order=1, taylor_factors_dtype=float32)`` with ``cache_identifiers`` set to Wan's attention and FFN modules
  (``blocks.<i>.attn1 / attn2 / ffn``): diffusers' default identifiers (``^blocks.*attn``, full match) match no
  module of ``WanTransformer3DModel`` (its attentions are ``attn1`` / ``attn2``), so the default config skips nothing;
- ``fora[:INTERVAL[:WARMUP]]``: FORA-style reuse (Selvaraju et al., 2024) as a TaylorSeer config of order 0 on whole
  blocks (``^blocks.<i>$``): every INTERVAL-th step computes, the others reuse each block's last output. One
  tensor per block and CFG branch: the cache that fits Wan 14B at 480p on one 80 GB GPU, where TaylorSeer's
  per-module first-order factors (six tensors per block and branch) need hundreds of GB;
- ``compile[:BACKEND]``: regional ``torch.compile`` of the transformer blocks (backend ``inductor``); its
  seconds include compiling (in the first batch);
- ``magcache`` is refused: ``MagCacheConfig`` needs ``mag_ratios`` calibrated for the model (diffusers ships
  Flux's only) or ``calibrate=True``, which never skips.

Honest cost: diffusers does not report what a cache skipped, so the benchmark counts what really ran, with
forward pre-hooks on the first linear layer of each block's self-attention (``attn1.to_q``), cross-attention
(``attn2.to_q``) and feed-forward network, per token count (stage size). FLOPs are then the analytic
per-component FLOPs of :func:`surf_video.bench.signature_scoring.transformer_flop_parts` times the components that ran,
plus the parts outside the blocks (patch embedding, text embedder, head) once per transformer call.
``compile`` skips no work: its rows keep the nominal FLOPs (no hooks, which would make the compiled blocks
recompile).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..pipelines.accel import BLOCK_IDENTIFIERS, WAN_TAYLORSEER_IDENTIFIERS, taylorseer_config
from .signature_scoring import transformer_flop_parts

__all__ = ["AccelSpec", "parse_accelerations", "accel_methods", "run_accelerated", "BlockCounter",
           "counted_flops", "DEFAULTS", "verdicts", "verdict_lines"]

#: default parameters (recorded in the results)
DEFAULTS = {
    "fbcache": {"threshold": 0.05},
    "taylorseer": {"cache_interval": 4, "disable_cache_before_step": 3, "max_order": 1,
                   "taylor_factors_dtype": "float32",
                   "cache_identifiers": list(WAN_TAYLORSEER_IDENTIFIERS)},
    "fora": {"cache_interval": 4, "disable_cache_before_step": 3, "max_order": 0, "taylor_factors_dtype": "float32",
             "cache_identifiers": [BLOCK_IDENTIFIERS[0]]},  # Wan's blocks (fora_config's default adds Hunyuan's)
    "compile": {"backend": "inductor", "dynamic": False},
}
KNOWN = tuple(DEFAULTS) + ("magcache",)


@dataclass(frozen=True)
class AccelSpec:
    """One acceleration of ``--accelerations``: ``name`` (the row suffix) and its parameters."""

    name: str
    params: dict = field(default_factory=dict)

    @property
    def is_cache(self) -> bool:
        return self.name in ("fbcache", "taylorseer", "fora")

    def kwargs(self) -> dict:
        """Arguments of :meth:`SURFPipeline.enable_accelerations`."""
        p = self.params
        if self.name == "fbcache":
            from diffusers import FirstBlockCacheConfig

            return {"cache": FirstBlockCacheConfig(threshold=float(p["threshold"]))}
        if self.name in ("taylorseer", "fora"):
            return {"cache": taylorseer_config(
                cache_interval=int(p["cache_interval"]), disable_cache_before_step=int(p["disable_cache_before_step"]),
                max_order=int(p["max_order"]), taylor_factors_dtype=getattr(torch, p["taylor_factors_dtype"]),
                cache_identifiers=list(p["cache_identifiers"]))}
        return {"compile": True, "compile_kwargs": {"backend": p["backend"], "dynamic": p["dynamic"]}}


def parse_accelerations(specs) -> list[AccelSpec]:
    """``"fbcache,taylorseer:2:1,compile:eager"`` (or a list of such items) to :class:`AccelSpec` s.

    Raises:
        ValueError: an unknown name, a bad parameter, ``magcache`` (needs calibration) or a duplicate.
    """
    items = specs.split(",") if isinstance(specs, str) else list(specs or ())
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, *vals = item.split(":")
        if name == "magcache":
            raise ValueError("--accelerations: magcache needs mag_ratios calibrated for this model (diffusers ships "
                             "Flux's only; calibrate=True never skips a step), which the benchmark cannot make yet")
        if name not in DEFAULTS:
            raise ValueError(f"--accelerations: unknown {name!r}; known: {', '.join(KNOWN[:-1])} "
                             "(fbcache[:THRESHOLD], taylorseer[:INTERVAL[:WARMUP]], fora[:INTERVAL[:WARMUP]], "
                             "compile[:BACKEND])")
        p = {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULTS[name].items()}
        keys = {"fbcache": ["threshold"], "taylorseer": ["cache_interval", "disable_cache_before_step"],
                "fora": ["cache_interval", "disable_cache_before_step"],
                "compile": ["backend"]}[name]
        if len(vals) > len(keys):
            raise ValueError(f"--accelerations: {item!r} takes at most {len(keys)} parameter(s) ({', '.join(keys)})")
        try:
            for key, v in zip(keys, vals):
                p[key] = v if key == "backend" else type(p[key])(v)
        except ValueError:
            raise ValueError(f"--accelerations: bad parameter in {item!r} ({', '.join(keys)})") from None
        if name == "fbcache" and not p["threshold"] > 0:
            raise ValueError(f"--accelerations: fbcache threshold must be > 0, got {p['threshold']}")
        if name in ("taylorseer", "fora") and (p["cache_interval"] < 1 or p["disable_cache_before_step"] < 0):
            raise ValueError(f"--accelerations: {name} needs INTERVAL >= 1 and WARMUP >= 0, got {item!r}")
        if any(s.name == name for s in out):
            raise ValueError(f"--accelerations: {name} given twice")
        out.append(AccelSpec(name, p))
    return out


def accel_methods(cfg) -> list:
    """The two rows of every acceleration of ``cfg.accelerations``."""
    from .signature import Method

    out = []
    for spec in parse_accelerations(cfg.accelerations):
        out.append(Method(f"reference+{spec.name}", "accel", steps=cfg.num_steps, at_preview=False, accel=spec.name))
        out.append(Method(f"surf_flow_k{cfg.surf_k}+{spec.name}", "accel", form="flow", k=cfg.surf_k, accel=spec.name))
    return out


class BlockCounter:
    """Counts the block components that really run, per token count, while active.

    ``counts[(component, tokens)]`` is the number of batch rows that went through ``component``
    (``'self'``, ``'cross'``, ``'ffn'``) of any block at that token count; ``calls[tokens]`` the transformer
    calls' batch rows.
    """

    def __init__(self, transformer):
        self.transformer = transformer
        self.counts: dict[tuple[str, int], int] = {}
        self.calls: dict[int, int] = {}
        self._handles = []

    def _hook(self, comp):
        def pre(_module, args):
            x = args[0]
            key = (comp, int(x.shape[1]))
            self.counts[key] = self.counts.get(key, 0) + int(x.shape[0])
        return pre

    def _top(self, _module, args, kwargs):
        x = kwargs.get("hidden_states", args[0] if args else None)
        pt, ph, pw = self.transformer.config.patch_size
        tokens = (x.shape[2] // pt) * (x.shape[3] // ph) * (x.shape[4] // pw)
        self.calls[tokens] = self.calls.get(tokens, 0) + int(x.shape[0])

    def __enter__(self):
        t = self.transformer
        for block in t.blocks:
            ffn_lin = next(m for m in block.ffn.modules() if isinstance(m, torch.nn.Linear))
            for comp, mod in (("self", block.attn1.to_q), ("cross", block.attn2.to_q), ("ffn", ffn_lin)):
                self._handles.append(mod.register_forward_pre_hook(self._hook(comp)))
        self._handles.append(t.register_forward_pre_hook(self._top, with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []


def counted_flops(counter: BlockCounter, tcfg, text_len: int, batch: int) -> tuple[float, float]:
    """``(FLOPs per video of what ran, share of the block FLOPs that ran)`` from a :class:`BlockCounter`."""
    total, blocks_ran, blocks_nominal = 0.0, 0.0, 0.0
    for tokens, rows in counter.calls.items():
        parts = transformer_flop_parts(tcfg, tokens, text_len)
        total += rows * parts["outside"]
        for comp in ("self", "cross", "ffn"):
            ran = counter.counts.get((comp, tokens), 0)
            total += ran * parts[comp]
            blocks_ran += ran * parts[comp]
            blocks_nominal += rows * tcfg.num_layers * parts[comp]
    share = blocks_ran / blocks_nominal if blocks_nominal else float("nan")
    return total / batch, share


@torch.no_grad()
def run_accelerated(surf, methods: list, cfg, prompts: list[str], item_seeds: list[int]) -> tuple[dict, dict]:
    """Runs the ``'accel'`` methods of one batch, each acceleration applied for its two rows only.

    Returns:
        ``(runs, info)``: ``runs[name]`` like the other methods' (with per-video ``flops``, ``compute_share`` and
        ``block_calls``), ``info[accel] = {"error": str}`` where applying or running it raised (its rows are then
        missing from this batch; the acceleration is removed all the same).
    """
    from .signature import Method, _run_method

    specs = {s.name: s for s in parse_accelerations(cfg.accelerations)}
    runs, info = {}, {}
    tcfg = surf.adapter.transformer.config
    b = len(prompts)
    for name, spec in specs.items():
        rows = [m for m in methods if m.kind == "accel" and m.accel == name]
        if not rows:
            continue
        try:
            surf.enable_accelerations(refiner=False, **spec.kwargs())
            for m in rows:
                plain = (Method(m.name, "steps", steps=cfg.num_steps, at_preview=False) if m.k is None
                         else Method(m.name, "surf", form=m.form, k=m.k))
                t0 = time.perf_counter()  # (SURFPipeline.__call__ drops a cache's state from the previous call)
                if not spec.is_cache:  # compile skips no work (and hooks inside a compiled block would recompile)
                    run = _run_method(surf, plain, cfg, prompts, item_seeds)
                    run.update(compute_share=1.0, wall=(time.perf_counter() - t0) / b)
                    runs[m.name] = run
                    continue
                with BlockCounter(surf.adapter.transformer) as counter:
                    run = _run_method(surf, plain, cfg, prompts, item_seeds)
                flops, share = counted_flops(counter, tcfg, cfg.max_sequence_length, b)
                nominal = {t: rows * tcfg.num_layers / b for t, rows in counter.calls.items()}
                run.update(flops=[flops] * b, compute_share=share, wall=(time.perf_counter() - t0) / b,
                           block_calls={f"{c}@{t}": n / b for (c, t), n in sorted(counter.counts.items())},
                           block_calls_skipped={f"{c}@{t}": nominal[t] - counter.counts.get((c, t), 0) / b
                                                for t in sorted(nominal) for c in ("self", "cross", "ffn")})
                runs[m.name] = run
        except Exception as err:  # noqa: BLE001 - an acceleration that breaks is a result, not a crash
            info[name] = {"error": f"{type(err).__name__}: {err}"}
            for m in rows:
                runs.pop(m.name, None)
        finally:
            surf.disable_accelerations()
    return runs, info


# ---- verdicts for the README -----------------------------------------------------------------------------
#: a signature loss (plain minus accelerated, on object IoU / latent correlation or SSIM) above ``HURT`` hurts,
#: above ``BROKE`` breaks; a cost below ``SAVED`` x the plain one is a saving (a cache: counted FLOPs; compile:
#: seconds)
HURT, BROKE, SAVED = 0.02, 0.2, 0.95


def _mean(s: dict, name: str, key: str) -> float:
    return s.get(name, {}).get(key, {}).get("mean", float("nan"))


def verdicts(result: dict) -> list[dict]:
    """Per acceleration and row pair (``reference`` / ``reference+A``, ``surf_flow_k<k>`` / ``+A``): the numbers
    and a verdict, ``'helped'``, ``'hurt'``, ``'broke something'`` or ``'no effect'``, from the summary.

    The layout metric is object IoU where both rows have it, else the latent correlation.
    """
    import math

    s, cfg = result["summary"], result["config"]
    out = []
    for name, info in (result.get("accelerations") or {}).items():
        for plain in ("reference", f"surf_flow_k{cfg['surf_k']}"):
            acc = f"{plain}+{name}"
            if acc not in s or plain not in s:
                continue
            metric = "iou" if all(math.isfinite(_mean(s, n, "iou")) for n in (plain, acc)) else "latent_corr"
            row = {"acceleration": name, "plain": plain, "row": acc, "metric": metric,
                   "layout": (_mean(s, acc, metric), _mean(s, plain, metric)),
                   "ssim": (_mean(s, acc, "ssim"), _mean(s, plain, "ssim")),
                   "flops_ratio": _mean(s, acc, "flops") / _mean(s, plain, "flops"),
                   "seconds_ratio": _mean(s, acc, "seconds") / _mean(s, plain, "seconds"),
                   "compute_share": s[acc].get("compute_share", {}).get("mean", float("nan")),
                   "errors": info.get("errors", [])}
            losses = [p - a for a, p in (row["layout"], row["ssim"])]
            finite = all(math.isfinite(v) for v in losses)
            # a cache saves what it skips (counted FLOPs; seconds on a shared CPU are noisy); compile saves time only
            is_cache = "compute_share" in s[acc]
            saved = row["flops_ratio"] < SAVED if is_cache else row["seconds_ratio"] < SAVED
            slower = not is_cache and row["seconds_ratio"] > 1 / SAVED
            if row["errors"] or s[acc]["forwards"]["n"] == 0 or (not finite and all(
                    math.isfinite(p) for _, p in (row["layout"], row["ssim"]))):
                row["verdict"], row["why"] = "broke something", "error or no output"
            elif finite and max(losses) > BROKE:
                row["verdict"], row["why"] = "broke something", f"signature loss {max(losses):.3f}"
            elif finite and max(losses) > HURT:
                row["verdict"], row["why"] = "hurt", f"signature loss {max(losses):.3f}"
            elif slower:
                row["verdict"], row["why"] = "hurt", "slower, nothing skipped"
            else:
                row["verdict"] = "helped" if saved else "no effect"
                row["why"] = ("cheaper, signature kept" if saved else
                              "skipped (almost) nothing" if is_cache else "no faster, signature kept")
            out.append(row)
    return out


def verdict_lines(result: dict) -> list[str]:
    """One markdown line per acceleration: its parameters and both verdicts with their numbers."""
    lines = []
    by = {}
    for v in verdicts(result):
        by.setdefault(v["acceleration"], []).append(v)
    for name, info in (result.get("accelerations") or {}).items():
        params = ", ".join(f"{k} {v}" for k, v in info["params"].items() if k != "cache_identifiers")
        parts = []
        for v in by.get(name, []):
            lab = {"iou": "object IoU", "latent_corr": "latent corr"}[v["metric"]]
            where = "alone" if v["plain"] == "reference" else "with SURF"
            share = v["compute_share"]
            parts.append(
                f"{where}: **{v['verdict']}**, {v['why']} ({lab} {v['layout'][0]:.3f} vs {v['layout'][1]:.3f}, SSIM "
                f"{v['ssim'][0]:.3f} vs {v['ssim'][1]:.3f}, GFLOPs x{v['flops_ratio']:.2f}, s x{v['seconds_ratio']:.2f}"
                + (f", {100 * share:.0f} % of block FLOPs ran" if share == share else "") + ")")
        errs = info.get("errors") or []
        if errs:
            parts.append(f"error in {len(errs)} batch(es): {errs[0]}")
        lines.append(f"- {name} ({params}): " + ("; ".join(parts) or "no rows"))
    return lines
