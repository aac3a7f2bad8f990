"""SURF-Mini: the embedded miniature text-to-video family (Wan 2.1 architecture) trained on the world.

``load_surf_mini()`` returns the shipped ``WanPipeline``; ``load_surf_mini_refiner()`` its refiner;
``surf_video.mini.build`` builds the components from ``surf_video.mini.config``; the training loops
are ``train_vae``, ``train_base`` and ``train_refiner``. Imports are lazy (diffusers is heavy).
"""

from __future__ import annotations

from importlib import import_module

__all__ = [
    "load_surf_mini",
    "load_surf_mini_refiner",
    "has_surf_mini",
    "has_surf_mini_refiner",
    "SURF_MINI_PATH",
    "build_pipeline",
    "build_tokenizer",
    "build_refiner",
]

_WHERE = {
    "load_surf_mini": "loading",
    "load_surf_mini_refiner": "loading",
    "has_surf_mini": "loading",
    "has_surf_mini_refiner": "loading",
    "SURF_MINI_PATH": "loading",
    "build_pipeline": "build",
    "build_tokenizer": "build",
    "build_refiner": "build",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
