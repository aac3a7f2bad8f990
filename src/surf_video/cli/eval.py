"""``surf eval``: benchmarks that score generated videos.

Examples::

    surf eval signature                                   # 60 prompts x 1 seed on the shipped SURF-Mini
    surf eval signature --quick --device cpu              # 4 prompts, CI-sized
    surf eval signature --prompts benchmarks/prompts/signature.txt --seeds 2 --base runs/mini/pipe \\
        --out benchmarks/results/signature.json --plots benchmarks --readme benchmarks/README.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from surf_video.mini.config import GUIDANCE_SCALE

__all__ = ["register"]

DEFAULT_PROMPTS = "benchmarks/prompts/signature.txt"


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="benchmarks: signature retention of SURF against baselines")
    sub = p.add_subparsers(dest="eval_command", metavar="BENCHMARK")
    sub.required = True
    s = sub.add_parser("signature", help="layout / semantics / motion of SURF previews vs the base model's output",
                       description="Signature-retention benchmark (issues 7 and 11): the reference (base at R, all "
                                   "steps) against SURF's k sweep for each re-noise form and 'auto', direct low-res "
                                   "inference, fewer steps and a high-low-high schedule, from the same noise.")
    s.add_argument("--prompts", default=None, help=f"caption file, one per line (default: {DEFAULT_PROMPTS}, "
                                                   "else 60 generated captions)")
    s.add_argument("--num-prompts", type=int, default=None, help="use only the first this many prompts")
    s.add_argument("--seeds", type=int, default=1, help="seeds per prompt (0..N-1)")
    s.add_argument("--base", default=None, help="SURF-Mini pipeline folder (default: the shipped weights)")
    s.add_argument("--tiny", action="store_true", help="use the tiny random test pipeline (smoke tests only)")
    s.add_argument("--random-weights", action="store_true",
                   help="use the SURF-Mini architecture with random weights (harness checks; NOT signature evidence)")
    s.add_argument("--quick", action="store_true", help="CI-sized: 4 prompts, 1 seed")
    s.add_argument("--steps", type=int, default=40, help="N, steps of the reference")
    s.add_argument("--surf-k", type=int, default=10, help="SURF's default switch step")
    s.add_argument("--k-values", default="0,5,10,20,30,40", help="switch-step sweep, comma separated")
    s.add_argument("--forms", default="flow,paper,snr", help="re-noise forms of SURF's rows")
    s.add_argument("--sweep-forms", default=None,
                   help="forms that get the whole k sweep, the others run at --surf-k only; 'all' = every form "
                        "(issue 11's sweep, about 1.5x the default run's time); default: flow (every form without flow)")
    s.add_argument("--no-auto", action="store_true", help="skip switch_step='auto'")
    s.add_argument("--fewer-steps", default="12,20", help="step counts of the fewer-steps baselines")
    s.add_argument("--hlh", default="4,34", help="k1,k2 of the high-low-high schedule ('none' to skip)")
    s.add_argument("--base-size", type=int, default=128, help="R in pixels")
    s.add_argument("--preview-size", type=int, default=64, help="P in pixels")
    s.add_argument("--frames", type=int, default=17)
    s.add_argument("--guidance", type=float, default=GUIDANCE_SCALE,
                   help=f"CFG scale (default {GUIDANCE_SCALE}: SURF-Mini's sampling default; runs before v6 used 5.0)")
    s.add_argument("--max-sequence-length", type=int, default=40)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--refiner", default=None, metavar="PATH",
                   help="a RefinerTransformer3DModel folder (save_pretrained): every SURF method also gets a "
                        "'<name>+refiner' row, its preview refined to --target-size (SURFPipeline.refine)")
    s.add_argument("--target-size", type=int, default=192, help="refined size in pixels with --refiner (192 = 1.5 R "
                                                                "for SURF-Mini)")
    s.add_argument("--refine-steps", type=int, default=10, help="flow-map steps of the refiner")
    s.add_argument("--accelerations", default="", metavar="LIST",
                   help="e.g. fbcache,taylorseer,compile (optional params: fbcache:THRESHOLD, "
                        "taylorseer:INTERVAL[:WARMUP], compile:BACKEND): rows 'reference+A' and "
                        "'surf_flow_k<surf-k>+A' per acceleration A, scored against the plain reference")
    s.add_argument("--methods", default=None, help="run only these methods (comma separated; reference always)")
    s.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    s.add_argument("--workers", type=int, default=0, help="score videos in this many processes (0: in-process)")
    s.add_argument("--max-minutes", type=float, default=None,
                   help="stop after the batch that passes this budget (results say complete: false)")
    s.add_argument("--out", default="benchmarks/results/signature.json", help="result JSON")
    s.add_argument("--plots", default=None, help="folder for signature_*.png plots (default: the JSON's parent's parent)")
    s.add_argument("--readme", default=None, help="update the '## Signature retention' table in this README")
    s.add_argument("--label", default=None, help="model label written into the results (default: derived)")
    s.add_argument("--cpu-timing", type=int, default=0, metavar="N",
                   help="after the run, time every method on the CPU with --cpu-threads threads on N prompts")
    s.add_argument("--cpu-threads", type=int, default=2)
    s.add_argument("--no-plots", action="store_true", help="write the JSON only (e.g. where matplotlib is missing)")
    s.add_argument("--examples-npz", default=None, help="also save the example frames here (for --report-only)")
    s.add_argument("--report-only", default=None, metavar="JSON",
                   help="no sampling: re-make plots and the README table from a results JSON (and --examples-npz)")
    s.set_defaults(func=_signature)


def _sweep_forms(args) -> tuple[str, ...] | None:
    """``--sweep-forms``: None (every form) for 'all'; default 'flow' where it is among ``--forms``."""
    if args.sweep_forms is None:
        return ("flow",) if "flow" in args.forms.split(",") else None
    if args.sweep_forms.strip() == "all":
        return None
    return tuple(f.strip() for f in args.sweep_forms.split(",") if f.strip())


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None


def _load(args) -> tuple[object, str]:
    import torch

    from surf_video.pipelines.surf_pipeline import SURFPipeline

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if sum([args.tiny, args.random_weights, args.base is not None]) > 1:
        raise ValueError("--tiny, --random-weights and --base exclude each other")
    refiner = None
    if args.refiner:  # before the base: a bad path fails fast
        from surf_video.bench.signature_refine import load_refiner

        refiner = load_refiner(args.refiner)
    if args.tiny:
        from surf_video.pipelines.tiny import tiny_wan_pipeline

        pipe, label = tiny_wan_pipeline(), "tiny random pipeline (NOT signature evidence)"
    elif args.random_weights:
        from surf_video.mini.build import build_pipeline

        torch.manual_seed(0)
        pipe, label = build_pipeline(), "SURF-Mini architecture, random weights (NOT signature evidence)"
    else:
        from surf_video.mini.loading import (
            has_surf_mini,
            load_surf_mini,
            surf_mini_path,
        )

        path = surf_mini_path(args.base)
        if not has_surf_mini(path):
            raise FileNotFoundError(f"no SURF-Mini weights at {path}; pass --base PATH, or --random-weights / --tiny "
                                    "to check the harness")
        pipe, label = load_surf_mini(path, device="cpu"), f"SURF-Mini ({path})"
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    if refiner is not None:
        refiner.to(device)
        label += f" + refiner {args.refiner}"
    # from_pipe raises ValueError when the refiner's channels differ from the base VAE's latent space
    return SURFPipeline.from_pipe(pipe, refiner=refiner, base_size=(args.base_size, args.base_size)), args.label or label


def _signature(args: argparse.Namespace) -> int:
    import torch

    from surf_video.bench import signature as sig
    from surf_video.bench import signature_report as rep

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.report_only:
        loaded = rep.load_results(args.report_only, args.examples_npz)
        if args.label:  # display label of the plots and the README (the JSON is not rewritten)
            loaded["model"] = args.label
        return _report(args, loaded, Path(args.report_only))
    hlh = None if args.hlh.strip().lower() == "none" else _ints(args.hlh)
    if hlh is not None and len(hlh) != 2:
        raise ValueError(f"--hlh takes k1,k2 or 'none', got {args.hlh!r}")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    cfg = sig.SignatureConfig(
        num_steps=args.steps, surf_k=args.surf_k, k_values=_ints(args.k_values),
        forms=tuple(f.strip() for f in args.forms.split(",") if f.strip()), auto=not args.no_auto,
        sweep_forms=_sweep_forms(args),
        fewer_steps=_ints(args.fewer_steps), hlh=hlh, base_size=args.base_size, preview_size=args.preview_size,
        num_frames=args.frames, guidance_scale=args.guidance, max_sequence_length=args.max_sequence_length,
        batch_size=args.batch_size, seeds=tuple(range(args.seeds)), num_prompts=args.num_prompts,
        refine_size=args.target_size if args.refiner else None, refine_steps=args.refine_steps,
        accelerations=tuple(a.strip() for a in args.accelerations.split(",") if a.strip()),
    )
    if args.quick:
        cfg.num_prompts = args.num_prompts or sig.QUICK_OVERRIDES["num_prompts"]
        cfg.seeds = sig.QUICK_OVERRIDES["seeds"]
    cfg.check()
    if args.prompts is not None:
        prompts = sig.load_prompts(args.prompts)
    elif Path(DEFAULT_PROMPTS).is_file():
        prompts = sig.load_prompts(DEFAULT_PROMPTS)
    else:
        prompts = sig.make_prompts(60)
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    surf, label = _load(args)
    used = prompts[: cfg.num_prompts] if cfg.num_prompts else prompts
    command = "surf eval signature " + shlex.join(_argv_tail()) if "signature" in sys.argv else "(run from Python)"
    out = Path(args.out)

    def annotate(res: dict) -> dict:
        res.update(model=label, prompts=used, command=command)
        if args.refiner:
            res["refiner_path"] = str(args.refiner)
        return res

    def partial(res: dict) -> None:  # keep what is done if the run is cut short
        rep.write_results(annotate(res), out)

    result = annotate(sig.run_signature(surf, prompts, cfg, methods=methods, workers=args.workers,
                                        max_minutes=args.max_minutes, on_batch=partial))
    if args.cpu_timing > 0:
        result["cpu_timing"] = sig.cpu_timing(surf, result["prompts"], cfg, methods, threads=args.cpu_threads,
                                              num_prompts=args.cpu_timing)
    rep.write_results(result, out)
    if args.examples_npz:
        rep.save_examples(result, args.examples_npz)
    return _report(args, result, out)


def _print_table(result: dict) -> None:
    """The results table, and one verdict line per acceleration when there are acceleration rows."""
    from surf_video.bench import signature_report as rep

    print(rep.markdown_table(result))
    if result.get("accelerations"):
        from surf_video.bench.signature_accel import verdict_lines

        print("\n".join(verdict_lines(result)))


def _report(args, result: dict, out: Path) -> int:
    from surf_video.bench import signature_report as rep

    command = result.get("command", "")
    if args.no_plots:
        _print_table(result)
        print(f"wrote {out}")
        return 0
    plots = Path(args.plots) if args.plots else out.parent.parent
    plots.mkdir(parents=True, exist_ok=True)
    stem = out.stem  # e.g. signature, signature_quick
    files = {
        "results": str(out),
        "quality vs cost": str(rep.plot_quality_vs_cost(result, plots / f"{stem}_quality_vs_cost.png")),
        "k sweep": str(rep.plot_k_sweep(result, plots / f"{stem}_k_sweep.png")),
    }
    ex = rep.plot_examples(result, plots / f"{stem}_examples.png")
    if ex is not None:
        files["examples"] = str(ex)
    _print_table(result)
    for metric in ("iou", "latent_corr"):
        for t in rep.check_targets(result, metric):
            held = "n/a" if t["held"] is None else ("held" if t["held"] else "NOT held")
            print(f"- {t['target']}: {t['measured']} -> {held}")
    if args.readme:
        readme = Path(args.readme)
        rel = {k: str(Path(v).resolve().relative_to(readme.resolve().parent)) if _inside(v, readme.parent) else v
               for k, v in files.items()}
        rep.update_readme_section(readme, rep.render_section(result, command, rel))
    print(f"wrote {out} and plots in {plots}")
    return 0


def _inside(path: str, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _argv_tail() -> list[str]:
    return sys.argv[sys.argv.index("signature") + 1 :]
