"""A real browser on the served app: type a prompt, make 2 previews, pick the second, refine, download."""

import numpy as np
import pytest

from surf_video.io.video import read_video

import webdemo_browser as browser


@pytest.fixture(scope="module")
def chromium():
    why = browser.ensure_chromium()
    if why is not None:
        pytest.skip(f"Chromium could not be installed for the browser test: {why}")
    return browser.CHROMIUM


def test_preview_pick_refine_download_in_a_browser(server, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    url, demo = server
    with sync_playwright() as p:
        b = browser.launch(p)
        try:
            page = b.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
            status = browser.make_previews(page, url, "a red circle moving right", num=2, seed=3)
            assert status.startswith("2 preview(s) of 16x16")
            assert page.is_visible("#preview-2 video") and not page.is_visible("#preview-3")
            # the previews play in the page: the browser decoded them at the preview size
            page.wait_for_function("document.querySelector('#preview-2 video').videoWidth === 16", timeout=30_000)
            browser.choose_size(page, "48x48")
            second, status2 = browser.refine_and_download(page, "Preview 2 · seed 4", tmp_path / "second.mp4")
            assert "seed 4 to 48x48, 5 frames" in status2
            video = read_video(second)
            assert video.shape == (5, 48, 48, 3)  # tiny-wan: 5 frames, refined to the chosen 48x48
            first, _ = browser.refine_and_download(page, "Preview 1 · seed 3", tmp_path / "first.mp4")
            other = read_video(first)
            assert other.shape == video.shape
            assert np.any(other[0] != video[0]) and np.any(other[1] != video[1])
            # refining the second preview again gives the same video: the difference is the choice, not noise
            again, status3 = browser.refine_and_download(page, "Preview 2 · seed 4", tmp_path / "again.mp4")
            assert "seed 4 to 48x48" in status3
            np.testing.assert_array_equal(read_video(again), video)
            assert not page.locator("text=Traceback").count()
        finally:
            b.close()
