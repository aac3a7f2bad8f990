"""Drives the web demo in headless Chromium (Debian's, never a Playwright download); used by the browser
test and by ``take_screenshot.py``."""

import os
import socket
import subprocess
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling home, which a closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
REPO = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 120_000


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound and released; the app binds it right after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_chromium() -> str | None:
    """Runs ``.ci/setup-browser`` if Chromium is missing; returns why it is still missing, or None."""
    if os.access(CHROMIUM, os.X_OK):
        return None
    proc = subprocess.run(["bash", str(REPO / ".ci" / "setup-browser")], capture_output=True, text=True,
                          timeout=900)
    if os.access(CHROMIUM, os.X_OK):
        return None
    return (proc.stderr or proc.stdout).strip() or f"{CHROMIUM} is missing after .ci/setup-browser"


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def make_previews(page, url: str, prompt: str, num: int, seed: int = 0) -> str:
    """Opens the app, types the prompt and seed, asks for ``num`` previews; returns the status line."""
    page.goto(url)
    page.wait_for_selector("#prompt textarea", timeout=TIMEOUT_MS)
    page.fill("#prompt textarea", prompt)
    page.fill("#seed input", str(seed))
    page.fill("#num-previews input[type=number]", str(num))
    page.press("#num-previews input[type=number]", "Enter")
    page.click("#preview-btn")
    page.wait_for_selector(f"#preview-{num} video", timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#preview-status').innerText.includes('preview(s)')",
                           timeout=TIMEOUT_MS)
    return page.inner_text("#preview-status")


def choose_size(page, label: str) -> None:
    page.click("#target-size input")
    page.get_by_role("option", name=label, exact=True).click()


def refine_and_download(page, preview_label: str, dest: Path) -> tuple[Path, str]:
    """Picks the preview, presses Refine, waits for the new result and downloads it to ``dest``.

    The status line names the new file; the test waits until the page's player shows that file, then
    downloads and checks the download is that file (not the previous result).
    """
    code = "document.querySelector('#refine-status code')"
    before = page.evaluate(f"{code} ? {code}.innerText : ''")
    page.get_by_label(preview_label, exact=True).check()
    page.click("#refine-btn")
    page.wait_for_function(f"old => {code} && {code}.innerText !== old", arg=before, timeout=TIMEOUT_MS)
    name = page.inner_text("#refine-status code")
    status = page.inner_text("#refine-status")
    page.wait_for_function("n => { const v = document.querySelector('#final video'); return v && v.currentSrc.endsWith(n); }",
                           arg=name, timeout=TIMEOUT_MS)
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename == name, (download.suggested_filename, name)
    download.save_as(dest)
    return dest, status
