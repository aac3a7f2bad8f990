"""The ``surf web`` demo: a Gradio app (needs the ``web`` extra: ``pip install -e .[web]``).

:mod:`surf_video.web.jobs` holds the Gradio-free work (previews, per-session storage, refinement);
:mod:`surf_video.web.app` builds the page around it.
"""

__all__ = ["jobs", "app"]
