"""The SURF math as pure functions on tensors (no diffusers import)."""

from .backproject import back_project
from .reshift import (
    RENOISE_MODES,
    RESIZE_MODES,
    estimate_x0,
    relative_change,
    renoise,
    resize_latent,
    resize_noise_gain,
    snr_resume,
)
from .schedule import Stage, make_stage_plan, resolution_shift_factor, restage_sigmas, shift_sigmas

__all__ = [
    "RENOISE_MODES",
    "RESIZE_MODES",
    "Stage",
    "back_project",
    "estimate_x0",
    "make_stage_plan",
    "relative_change",
    "renoise",
    "resize_latent",
    "resize_noise_gain",
    "resolution_shift_factor",
    "restage_sigmas",
    "shift_sigmas",
    "snr_resume",
]

from .flow_map import (
    augment_lr_latent,
    flow_map_interpolate,
    flow_map_sample,
    flow_map_timesteps,
    flow_map_velocity,
    upsample_latent,
)
from .window import (
    WindowLayout,
    boundary_window_mask,
    cyclic_shift,
    window_layout,
    window_merge,
    window_partition,
    window_positions,
    window_segment_ids,
)

__all__ += [
    "augment_lr_latent",
    "flow_map_interpolate",
    "flow_map_sample",
    "flow_map_timesteps",
    "flow_map_velocity",
    "upsample_latent",
    "WindowLayout",
    "boundary_window_mask",
    "cyclic_shift",
    "window_layout",
    "window_merge",
    "window_partition",
    "window_positions",
    "window_segment_ids",
]
