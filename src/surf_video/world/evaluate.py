"""World evaluator (work in progress)."""

from __future__ import annotations

__all__ = ["evaluate_video"]


def evaluate_video(video, caption):  # pragma: no cover - replaced by the real evaluator shortly
    raise NotImplementedError("evaluate_video is being written")
