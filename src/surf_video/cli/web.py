"""``surf web``: serve the Gradio demo (preview several, pick one, refine it) on the local machine."""

from __future__ import annotations

import argparse
import logging

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "web", help="browser demo: make previews, pick one, refine it (needs the web extra: pip install -e .[web])",
        description="Serves a Gradio app: N previews in one batch, pick one, refine its saved latents.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--base", default="surf-mini",
                   help="surf-mini (shipped), tiny-wan (random toy, for smoke tests), or a diffusers Wan 2.1 / "
                        "HunyuanVideo folder")
    p.add_argument("--refiner", default="auto",
                   help="refiner folder (safetensors); 'auto' = the base's own (SURF-Mini's refiner)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, help="bf16, fp16 or fp32; none = as stored")
    p.add_argument("--max-previews", type=int, default=4, help="cap of previews per click (one batch)")
    p.add_argument("--fps", type=int, default=8, help="frames per second of the written videos")
    p.add_argument("--store", default=None, help="folder for the sessions' previews; none = a temporary folder")
    p.set_defaults(func=run)


def run(args) -> int:
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    if not 1 <= args.max_previews <= 16:
        raise ValueError(f"--max-previews must be in 1..16, got {args.max_previews}")
    try:
        from ..web.app import build_app, launch
    except ImportError as err:
        raise ValueError(str(err)) from None
    from ..web.jobs import DemoModel, PreviewStore

    try:
        model = DemoModel.load(args.base, None if args.refiner == "none" else args.refiner, args.device, args.dtype,
                               fps=args.fps)
    except (ImportError, OSError) as err:
        if args.base != "surf-mini":
            raise
        # the shipped weights are missing (e.g. a source checkout without assets): say what to do instead
        raise ValueError(f"--base surf-mini: SURF-Mini could not be loaded ({err}); "
                         "install its weights or try --base tiny-wan") from None
    if not model.target_sizes:
        logger.warning("surf web: no refiner loaded; previews work, Refine will say so")
    demo = build_app(model, PreviewStore(args.store), max_previews=args.max_previews)
    print(f"surf web: {args.base} on {args.device}; previews stored in {demo.surf_store.root}")
    launch(demo, host=args.host, port=args.port, block=True)
    return 0
