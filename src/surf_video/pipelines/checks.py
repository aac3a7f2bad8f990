"""Input checks for SURFPipeline, raised before any model work with errors that name the argument."""

from __future__ import annotations

from ..core.reshift import RENOISE_MODES, RESIZE_MODES

__all__ = ["check_call", "check_refine", "OUTPUT_TYPES"]

OUTPUT_TYPES = ("latent", "np", "pil", "pt")


def _check_frames(a, num_frames: int) -> None:
    tf = a.temporal_factor
    if not isinstance(num_frames, int) or num_frames < 1 or (num_frames - 1) % tf != 0:
        raise ValueError(f"num_frames must be {tf}n+1 (e.g. 17, 33, 81) for this VAE, got {num_frames}")


def _check_size(a, name: str, h: int, w: int) -> None:
    m = a.size_multiple
    if h is None or w is None or h <= 0 or w <= 0 or h % m or w % m:
        raise ValueError(f"{name} must be positive multiples of {m} (VAE factor x patch size), got {h}x{w}")


def check_call(a, *, prompt, prompt_embeds, num_frames, num_inference_steps, stage_sizes, switch_step, renoise,
               resize_mode, resume_schedule, output_type, latents, height, width, refiner, refine_steps,
               auto_switch_tol, min_switch_step, max_switch_step) -> list[int]:
    """Validates a SURFPipeline call; returns the switch steps as a list (empty list for ``'auto'``)."""
    if prompt is None and prompt_embeds is None:
        raise ValueError("prompt: give a prompt (or prompt_embeds)")
    if isinstance(prompt, str) and not prompt.strip():
        raise ValueError("prompt must not be empty")
    _check_frames(a, num_frames)
    if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps}")
    if len(stage_sizes) < 1:
        raise ValueError("stage_sizes: at least one stage")
    for i, (h, w) in enumerate(stage_sizes):
        _check_size(a, "base_height/base_width" if i == 0 else f"preview size (stage {i})", h, w)
    for i in range(1, len(stage_sizes)):
        (h0, w0), (h1, w1) = stage_sizes[i - 1], stage_sizes[i]
        if h1 > h0 or w1 > w0:
            raise ValueError(
                f"preview_height/preview_width ({h1}x{w1}) must not be larger than the stage before it ({h0}x{w0})"
            )
    if renoise not in RENOISE_MODES:
        raise ValueError(f"renoise must be one of {RENOISE_MODES}, got {renoise!r}")
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
    if resume_schedule not in ("truncate", "respace"):
        raise ValueError(f"resume_schedule must be one of ('truncate', 'respace'), got {resume_schedule!r}")
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
    n = num_inference_steps
    if switch_step == "auto":
        if len(stage_sizes) != 2:
            raise ValueError("switch_step='auto' works with two stages (base and preview), not a longer stage_sizes plan")
        if not (isinstance(auto_switch_tol, (int, float)) and auto_switch_tol > 0):
            raise ValueError(f"auto_switch_tol must be a number > 0, got {auto_switch_tol!r}")
        hi = n if max_switch_step is None else max_switch_step
        if not (isinstance(min_switch_step, int) and isinstance(hi, int) and 1 <= min_switch_step <= hi <= n):
            raise ValueError(
                f"min_switch_step and max_switch_step must satisfy 1 <= min <= max <= num_inference_steps={n}, "
                f"got min={min_switch_step}, max={max_switch_step}"
            )
        switches: list[int] = []
    else:
        switches = [switch_step] if isinstance(switch_step, int) else list(switch_step)
        if len(switches) != len(stage_sizes) - 1:
            raise ValueError(
                f"switch_step: give {len(stage_sizes) - 1} switch step(s) for {len(stage_sizes)} stages, got {switch_step!r}"
            )
        for k in switches:
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
                raise ValueError(f"switch_step must be 'auto' or an integer in [0, num_inference_steps={n}], got {k!r}")
        if any(b < a_ for a_, b in zip(switches, switches[1:])):
            raise ValueError(f"switch_step values must be non-decreasing, got {switches}")
    if latents is not None and latents.ndim == 5 and latents.shape[1] != a.latent_channels:
        raise ValueError(f"latents: {latents.shape[1]} channels given, the transformer takes {a.latent_channels}")
    if (height is None) != (width is None):
        raise ValueError("height and width: give both (the refined output size) or neither")
    if height is not None:
        if refiner is None:
            raise ValueError("height/width set the refined output size and need a refiner; "
                             "use preview_height/preview_width for the preview size")
        _check_size(a, "height/width", height, width)
        ph, pw = stage_sizes[-1]
        if height < ph or width < pw:
            raise ValueError(f"height/width ({height}x{width}) must not be smaller than the preview ({ph}x{pw})")
        if not isinstance(refine_steps, int) or refine_steps < 1:
            raise ValueError(f"refine_steps must be an integer >= 1, got {refine_steps}")
    return switches


def check_refine(a, refiner, preview_latents, height, width, refine_steps, output_type) -> None:
    """Validates :meth:`SURFPipeline.refine` arguments."""
    if refiner is None:
        raise ValueError("refiner: this SURFPipeline has no refiner; build it with from_pipe(base, refiner=...)")
    if preview_latents is None or preview_latents.ndim != 5:
        raise ValueError("preview_latents must be a [B, C, F, h, w] tensor")
    if preview_latents.shape[1] != refiner.config.in_channels:
        raise ValueError(
            f"preview_latents: {preview_latents.shape[1]} channels, the refiner takes {refiner.config.in_channels}"
        )
    if height is None or width is None:
        raise ValueError("height and width (the refined size) are required")
    _check_size(a, "height/width", height, width)
    ph, pw = preview_latents.shape[-2] * a.spatial_factor, preview_latents.shape[-1] * a.spatial_factor
    if height < ph or width < pw:
        raise ValueError(f"height/width ({height}x{width}) must not be smaller than the preview ({ph}x{pw})")
    if not isinstance(refine_steps, int) or refine_steps < 1:
        raise ValueError(f"refine_steps must be an integer >= 1, got {refine_steps}")
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
