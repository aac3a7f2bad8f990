"""Prints the preview and refinement times exactly as the web app reports them (its status lines).

Run: ``PYTHONPATH=src python tests/web/measure_app_times.py [--base surf-mini|tiny-wan] [--repeats 3]``
Serves the app on 127.0.0.1, then per repeat: 2 previews in one click, and the second refined to every
supported target size (10 refine steps), through the same API the page uses.
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import webdemo_browser as wb  # noqa: E402


def main() -> int:
    from gradio_client import Client

    from surf_video.mini.loading import has_surf_mini
    from surf_video.web.app import build_app, launch
    from surf_video.web.jobs import DemoModel, PreviewStore

    p = argparse.ArgumentParser()
    p.add_argument("--base", default="surf-mini" if has_surf_mini() else "tiny-wan")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    model = DemoModel.load(args.base)
    demo = build_app(model, PreviewStore(tempfile.mkdtemp(prefix="surf-web-times-")))
    _, url, _ = launch(demo, port=wb.free_port(), block=False, quiet=True)
    c = Client(url, verbose=False)
    print(f"base: {args.base}")
    for rep in range(args.repeats):
        status, pick, *_ = c.predict("a red circle moving right", "", rep, 2, str(model.default_switch_step), "flow",
                                     api_name="/preview")
        print("preview:", status)
        for h, w in model.target_sizes:
            *_, rstatus = c.predict(pick["choices"][1][1], f"{h}x{w}", 10, api_name="/refine")
            print("refine: ", rstatus)
    demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
