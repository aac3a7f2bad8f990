"""Fixtures of the web demo's tests: one tiny-wan model and one running app per test session."""

import pytest
from webdemo_browser import free_port

from surf_video.web.jobs import DemoModel, PreviewStore


@pytest.fixture(scope="session")
def tiny_model():
    """SURF on the tiny random Wan pipeline with its refiner: 16x16 previews, 32/48/64 targets, 5 frames."""
    return DemoModel.load("tiny-wan", fps=8)


@pytest.fixture(scope="session")
def server(tiny_model, tmp_path_factory):
    """The Gradio app served on 127.0.0.1 at a free port: ``(url, demo)``."""
    from surf_video.web.app import build_app, launch

    demo = build_app(tiny_model, PreviewStore(tmp_path_factory.mktemp("web-store")))
    _, url, _ = launch(demo, host="127.0.0.1", port=free_port(), block=False, quiet=True)
    yield url, demo
    demo.close()
