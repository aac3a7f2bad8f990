"""Takes docs/web-screenshot.png: serves the demo, makes 2 previews, refines the second, shoots the page.

Run: ``PYTHONPATH=src python tests/web/take_screenshot.py [--base surf-mini|tiny-wan] [--out docs/web-screenshot.png]``
(default base: SURF-Mini when its weights are installed, else tiny-wan).
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import webdemo_browser as browser  # noqa: E402


def main() -> int:
    from surf_video.mini.loading import has_surf_mini
    from surf_video.web.app import build_app, launch
    from surf_video.web.jobs import DemoModel, PreviewStore

    p = argparse.ArgumentParser()
    p.add_argument("--base", default="surf-mini" if has_surf_mini() else "tiny-wan")
    p.add_argument("--out", default=str(browser.REPO / "docs" / "web-screenshot.png"))
    p.add_argument("--prompt", default="a red circle moving right")
    args = p.parse_args()
    why = browser.ensure_chromium()
    if why:
        raise SystemExit(why)
    model = DemoModel.load(args.base)
    demo = build_app(model, PreviewStore(tempfile.mkdtemp(prefix="surf-web-shot-")))
    _, url, _ = launch(demo, port=browser.free_port(), block=False, quiet=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = browser.launch(pw)
        page = b.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        print(browser.make_previews(page, url, args.prompt, num=2, seed=0))
        _, status = browser.refine_and_download(page, "Preview 2 · seed 1", Path(tempfile.mkdtemp()) / "final.mp4")
        print(status)
        page.wait_for_timeout(1500)  # let the players show a frame
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out, full_page=True)
        b.close()
    demo.close()
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
