"""Sigma schedules and stage plans for multi-resolution flow-matching sampling.

Convention (Wan 2.1, HunyuanVideo, diffusers' flow schedulers): ``z_t = (1 - t) * x0 + t * eps``
with the model predicting ``v = eps - x0``. A schedule is a decreasing list of sigmas
``sigma_0 > sigma_1 > ... > sigma_{N-1}`` followed by a terminal ``sigma_N = 0``; step ``i`` evaluates the
model at ``sigma_i`` and moves the state to ``sigma_{i+1}``.

A *stage plan* splits the N steps of one schedule into consecutive stages, each run at its own latent
resolution (SURF's preview stage: the first ``k`` steps at the base model's optimal resolution, the rest
at the preview resolution; any number of stages is allowed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = [
    "Stage",
    "make_stage_plan",
    "shift_sigmas",
    "resolution_shift_factor",
    "restage_sigmas",
]


@dataclass(frozen=True)
class Stage:
    """One stage of a stage plan.

    Attributes:
        height: latent height of the stage.
        width: latent width of the stage.
        start: index of the first step of the base schedule that this stage runs.
        end: one past the index of its last step (``end - start`` model evaluations, before CFG).
    """

    height: int
    width: int
    start: int
    end: int

    @property
    def num_steps(self) -> int:
        return self.end - self.start

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)


def make_stage_plan(
    num_steps: int, sizes: Sequence[tuple[int, int]], switch_steps: Sequence[int]
) -> list[Stage]:
    """Splits ``num_steps`` denoising steps into stages of decreasing (or equal) latent size.

    Args:
        num_steps: total number of steps N of the base schedule.
        sizes: latent ``(height, width)`` of each stage, first = the base model's optimal size.
        switch_steps: ``len(sizes) - 1`` non-decreasing step indices in ``[0, N]``; stage ``i`` runs
            steps ``[switch_steps[i-1], switch_steps[i])``. ``switch_steps = [N]`` means no switch (the plain
            base run); ``[0]`` means direct inference at the second size.

    Returns:
        The stages, empty stages included (the sampler skips them), in order.

    Raises:
        ValueError: on a wrong number of switch steps, a step outside ``[0, N]``, a decreasing list,
            or a stage larger than the one before it.
    """
    if num_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_steps}")
    if len(sizes) < 1:
        raise ValueError("a stage plan needs at least one stage size")
    if len(switch_steps) != len(sizes) - 1:
        raise ValueError(
            f"switch_step: expected {len(sizes) - 1} switch step(s) for {len(sizes)} stages, got {list(switch_steps)}"
        )
    bounds = [0, *[int(k) for k in switch_steps], num_steps]
    for k in switch_steps:
        if not 0 <= int(k) <= num_steps:
            raise ValueError(f"switch_step must be in [0, num_inference_steps={num_steps}], got {k}")
    if any(b > a for a, b in zip(bounds[1:], bounds[:-1])):
        raise ValueError(f"switch_step values must be non-decreasing, got {list(switch_steps)}")
    for (h0, w0), (h1, w1) in zip(sizes[:-1], sizes[1:]):
        if h1 > h0 or w1 > w0:
            raise ValueError(
                f"each stage must be no larger than the one before it: latent {h1}x{w1} follows {h0}x{w0} "
                "(the preview must not be larger than the base size)"
            )
    return [Stage(int(h), int(w), bounds[i], bounds[i + 1]) for i, (h, w) in enumerate(sizes)]


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """Applies the SD3 / Wan timestep shift ``s * sigma / (1 + (s - 1) * sigma)``.

    Shifts compose multiplicatively (shifting by ``a`` then ``b`` equals shifting by ``a * b``), so a
    factor below 1 moves an already shifted schedule towards lower noise.

    Args:
        sigmas: any shape, values in [0, 1].
        shift: the shift factor (> 0).

    Returns:
        Shifted sigmas, same shape and dtype.
    """
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def resolution_shift_factor(base_size: tuple[int, int], new_size: tuple[int, int]) -> float:
    """Resolution-aware shift factor ``sqrt(tokens_new / tokens_base)`` (SD3, section 5.3.2).

    A smaller image reaches the same signal-to-noise ratio at a lower sigma, so its remaining sigmas are
    shifted down by this factor (< 1 when ``new_size`` is smaller).

    Args:
        base_size: latent ``(height, width)`` the schedule was designed for.
        new_size: latent ``(height, width)`` of the new stage.
    """
    return math.sqrt((new_size[0] * new_size[1]) / (base_size[0] * base_size[1]))


def restage_sigmas(
    sigmas: torch.Tensor,
    start: int,
    end: int,
    *,
    first_sigma: float | None = None,
    shift: float = 1.0,
    mode: str = "keep",
) -> torch.Tensor:
    """Builds the sigma list of a stage that resumes the schedule at step ``start``.

    Args:
        sigmas: the base schedule, shape ``[N + 1]`` (terminal 0 included).
        start: first step of the stage.
        end: one past its last step.
        first_sigma: the noise level the stage actually starts at, when it differs from ``sigmas[start]``
            (the equal-SNR resume lands below it). ``None``: ``sigmas[start]`` (after ``shift``).
        shift: resolution-aware shift factor applied to the stage's sigmas (1 = none).
        mode: how the stage continues from ``first_sigma``: ``'keep'`` (the schedule's own sigmas, only
            valid when ``first_sigma`` is None), ``'truncate'`` (the schedule's sigmas below
            ``first_sigma``, so steps are skipped) or ``'respace'`` (the same number of steps, the schedule
            scaled to start at ``first_sigma``).

    Returns:
        The stage's sigmas, shape ``[M + 1]``: ``M`` evaluation sigmas then the value the stage ends at
        (``sigmas[end]`` after the shift; 0 for the last stage).
    """
    stage = sigmas[start : end + 1].clone()
    if shift != 1.0:
        stage = shift_sigmas(stage, shift)
    if first_sigma is None or mode == "keep":
        if first_sigma is not None:
            raise ValueError("restage_sigmas: mode='keep' cannot start at a different first_sigma")
        return stage
    if mode == "truncate":
        below = stage[1:][stage[1:] < first_sigma]
        return torch.cat([stage.new_tensor([first_sigma]), below])
    if mode == "respace":
        top = float(stage[0])
        tail = stage[-1]
        # Scale the stage's sigmas so that it starts at first_sigma and still ends where it ended.
        scaled = tail + (stage - tail) * ((first_sigma - float(tail)) / max(top - float(tail), 1e-12))
        return scaled
    raise ValueError(f"resume_schedule must be one of 'truncate', 'respace', got {mode!r}")
