"""Shipped RefinerTransformer3DModel configs (JSON files next to this module).

* ``refiner-1b``: Wan2.1-T2V-1.3B shapes (1536 hidden = 12 heads x 128, 30 layers, FFN 8960), so
  it can start from the Wan 1.3B weights (``RefinerTransformer3DModel.from_wan``); window 7 latent
  frames.
* ``refiner-paper-1b``: the paper's ~1B class as NOTES.md section 4 measured it (1024 hidden =
  16 heads x 64, 40 layers); FFN 8192 is inferred from the 1.02B parameter count, not printed in
  the paper. No public weights have these shapes, so it trains from scratch.
* ``refiner-tiny``: 2 layers, 2 heads x 8, for tests and the tiny pipeline.

Keys starting with ``_`` are notes and are dropped by :func:`load_refiner_config`.
"""

from __future__ import annotations

import json
from importlib import resources

__all__ = ["list_refiner_configs", "load_refiner_config"]


def list_refiner_configs() -> list[str]:
    """Names of the shipped refiner configs, sorted."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name[: -len(".json")] for f in files if f.name.endswith(".json"))


def load_refiner_config(name: str) -> dict:
    """Load a shipped refiner config as ``RefinerTransformer3DModel`` keyword arguments.

    Args:
        name: Config name, e.g. ``"refiner-1b"`` or ``"refiner-tiny"`` (a trailing ``.json`` is allowed).

    Returns:
        Dict of config fields (notes removed).

    Raises:
        ValueError: If ``name`` is not a shipped config.
    """
    name = name[: -len(".json")] if name.endswith(".json") else name
    names = list_refiner_configs()
    if name not in names:
        raise ValueError(f"unknown refiner config {name!r}; shipped: {names}")
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}
