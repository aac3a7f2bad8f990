"""Temporal window partition for the SURF Refiner's shifted-window attention (paper eq. 3).

Pure tensor functions (no diffusers import). Frames sit on dim 1 of every tensor here: ``x`` has
shape ``[B, F, *rest]`` (for attention ``rest`` is ``(tokens_per_frame, heads, head_dim)``).

Partition rule, for ``F`` frames, window ``W`` and shift ``S`` (``0 <= S < W``):

* the windows are the segments of ``[0, F)`` cut at ``S, S + W, S + 2W, ...``: a *head*
  ``[0, S)``, ``M = (F - S) // W`` *full* windows ``[S + jW, S + (j + 1)W)`` and a *tail*
  ``[S + MW, F)`` of ``R = (F - S) % W`` frames;
* ``S = 0`` is the regular partition (no head; the tail is the partial last window);
* ``S = W // 2`` is the shifted partition. Cyclically shifting the frames by ``-S`` puts the head
  behind the tail, so the frames after the full windows form one *boundary window*
  ``[tail, head]`` whose two halves are temporally unrelated and must not attend to each other
  (the paper's mask). The boundary window is the only window that can need a mask, and only
  when both its head and its tail are non-empty.

Full windows all have ``W`` frames, so they go to attention as one batch of ``B * M`` sequences
with no mask; the boundary window (``R + S`` frames) is one more call. Temporal positions for
3D RoPE restart at 0 at the start of every segment (head, each full window, tail): RoPE scores
depend only on position differences inside a segment, so this equals positions relative to the
window.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "WindowLayout",
    "window_layout",
    "cyclic_shift",
    "window_partition",
    "window_merge",
    "window_segment_ids",
    "window_positions",
    "boundary_window_mask",
]


@dataclass(frozen=True)
class WindowLayout:
    """Where the windows of one partition lie along the frame axis.

    Attributes:
        num_frames: ``F``, frames being partitioned.
        window: ``W``, frames per full window.
        shift: ``S``, frames in the head segment ``[0, S)``.
        num_full: ``M``, full windows, covering frames ``[S, S + M * W)``.
        tail: ``R``, frames of the partial tail segment ``[S + M * W, F)``.
    """

    num_frames: int
    window: int
    shift: int
    num_full: int
    tail: int

    @property
    def full_start(self) -> int:
        """First frame of the first full window (``== shift``)."""
        return self.shift

    @property
    def full_end(self) -> int:
        """One past the last frame of the last full window."""
        return self.shift + self.num_full * self.window

    @property
    def boundary_frames(self) -> int:
        """Frames in the boundary window ``[tail, head]`` (0 when there is none)."""
        return self.tail + self.shift

    @property
    def boundary_needs_mask(self) -> bool:
        """Whether the boundary window holds two unrelated segments (head and tail)."""
        return self.tail > 0 and self.shift > 0


def window_layout(num_frames: int, window: int, shift: int = 0) -> WindowLayout:
    """Compute the window layout for ``num_frames`` frames.

    Args:
        num_frames: Frames ``F >= 1``.
        window: Window size ``W >= 1`` in frames.
        shift: Cyclic shift ``S`` with ``0 <= S < W`` (the shifted blocks use ``W // 2``).

    Returns:
        The :class:`WindowLayout`.

    Raises:
        ValueError: On a non-positive frame count or window, or a shift outside ``[0, W)``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if window < 1:
        raise ValueError(f"temporal window size must be >= 1, got {window}")
    if not 0 <= shift < window:
        raise ValueError(f"shift must be in [0, window={window}), got {shift}")
    # A shift only means something when there is more than one window; clamping keeps the
    # head inside the video when F < S (then everything is head + tail).
    shift = min(shift, num_frames)
    num_full, tail = divmod(num_frames - shift, window)
    return WindowLayout(num_frames, window, shift, num_full, tail)


def cyclic_shift(x: torch.Tensor, shift: int, dim: int = 1) -> torch.Tensor:
    """Roll frames so that frame ``shift`` comes first (``torch.roll`` by ``-shift``).

    Reference form of the shift in eq. 3; :func:`window_partition` gets the same windows by
    slicing, without materialising the rolled tensor.

    Args:
        x: Tensor with frames on ``dim``.
        shift: Frames to move from the front to the back.
        dim: The frame dimension.

    Returns:
        Rolled tensor of the same shape.
    """
    return torch.roll(x, shifts=-shift, dims=dim)


def window_partition(
    x: torch.Tensor, window: int, shift: int = 0
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Split frames into a batch of full windows plus the boundary window.

    Equivalent to ``cyclic_shift(x, shift)`` followed by cutting the first ``M * W`` frames into
    windows and keeping the remaining ``R + S`` frames (``[tail, wrapped head]``) as one window.

    Args:
        x: ``[B, F, *rest]`` with frames on dim 1.
        window: Window size ``W`` in frames.
        shift: Cyclic shift ``S`` (``0`` for regular blocks, ``W // 2`` for shifted blocks).

    Returns:
        ``(full, boundary)``: ``full`` is ``[B * M, W, *rest]`` (batch-major: window ``j`` of
        sample ``b`` at index ``b * M + j``) or ``None`` when ``M == 0``; ``boundary`` is
        ``[B, R + S, *rest]`` (tail frames first, then the head) or ``None`` when empty.
    """
    b, f = x.shape[:2]
    rest = x.shape[2:]
    lay = window_layout(f, window, shift)
    full = None
    if lay.num_full:
        full = x[:, lay.full_start : lay.full_end].reshape(b * lay.num_full, window, *rest)
    boundary = None
    if lay.boundary_frames:
        tail, head = x[:, lay.full_end :], x[:, : lay.shift]
        if lay.shift == 0:
            boundary = tail
        elif lay.tail == 0:
            boundary = head
        else:
            boundary = torch.cat([tail, head], dim=1)
    return full, boundary


def window_merge(
    full: torch.Tensor | None,
    boundary: torch.Tensor | None,
    num_frames: int,
    window: int,
    shift: int = 0,
) -> torch.Tensor:
    """Inverse of :func:`window_partition`.

    Args:
        full: ``[B * M, W, *rest]`` or ``None`` (when ``M == 0``).
        boundary: ``[B, R + S, *rest]`` or ``None`` (when ``R + S == 0``).
        num_frames: ``F`` of the partitioned tensor.
        window: Window size ``W``.
        shift: The shift used to partition.

    Returns:
        ``[B, F, *rest]`` in the original frame order.
    """
    lay = window_layout(num_frames, window, shift)
    parts = []
    if boundary is not None:
        head, tail = boundary[:, lay.tail :], boundary[:, : lay.tail]
    if lay.shift:
        parts.append(head)
    if full is not None:
        batch = full.shape[0] // lay.num_full
        parts.append(full.reshape(batch, lay.num_full * window, *full.shape[2:]))
    if lay.tail:
        parts.append(tail)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def window_segment_ids(num_frames: int, window: int, shift: int = 0, device=None) -> torch.Tensor:
    """Segment index of every frame (frames attend to each other iff their ids are equal).

    Args:
        num_frames: ``F``.
        window: ``W``.
        shift: ``S``.
        device: Device of the result.

    Returns:
        ``[F]`` int64: 0 for the head (when ``S > 0``), then one id per full window, then the tail.
    """
    lay = window_layout(num_frames, window, shift)
    frames = torch.arange(num_frames, device=device)
    # floor((f - S) / W) is -1 on the head; +1 makes ids start at 0 whenever a head exists.
    ids = torch.div(frames - lay.shift, window, rounding_mode="floor")
    return ids + (1 if lay.shift else 0)


def window_positions(num_frames: int, window: int, shift: int = 0, device=None) -> torch.Tensor:
    """Temporal RoPE position of every frame, relative to the start of its segment.

    Args:
        num_frames: ``F``.
        window: ``W``.
        shift: ``S``.
        device: Device of the result.

    Returns:
        ``[F]`` int64 in ``[0, W)``.
    """
    lay = window_layout(num_frames, window, shift)
    frames = torch.arange(num_frames, device=device)
    pos = torch.remainder(frames - lay.shift, window)
    # The head [0, S) starts its own segment at frame 0.
    return torch.where(frames < lay.shift, frames, pos)


def boundary_window_mask(
    num_frames: int, window: int, shift: int, tokens_per_frame: int = 1, device=None
) -> torch.Tensor | None:
    """Boolean attention mask of the boundary window (``True`` = may attend).

    Args:
        num_frames: ``F``.
        window: ``W``.
        shift: ``S``.
        tokens_per_frame: Tokens per frame (``H * W`` after patching); each frame's tokens are
            contiguous in the window's sequence.
        device: Device of the result.

    Returns:
        ``[L, L]`` bool with ``L = (R + S) * tokens_per_frame``: block diagonal with a tail block
        and a head block; ``None`` when the boundary window holds a single segment (no mask needed).
    """
    lay = window_layout(num_frames, window, shift)
    if not lay.boundary_needs_mask:
        return None
    is_head = torch.arange(lay.boundary_frames, device=device) >= lay.tail
    is_head = is_head.repeat_interleave(tokens_per_frame)
    return is_head[:, None] == is_head[None, :]
