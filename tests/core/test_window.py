"""Temporal window partition: layouts, partition/merge, segment ids, RoPE positions, boundary mask."""

import pytest
import torch

from surf_video.core.window import (
    boundary_window_mask,
    cyclic_shift,
    window_layout,
    window_merge,
    window_partition,
    window_positions,
    window_segment_ids,
)

CASES = [(f, w, s) for f in (1, 2, 5, 6, 7, 8, 9) for w in (1, 2, 3, 4) for s in {0, w // 2}]


def _segments(num_frames, window, shift):
    """Reference: cut [0, F) at shift, shift + W, ... (written without the library)."""
    cuts = sorted({0, num_frames} | {c for c in range(shift, num_frames, window) if c > 0})
    return [list(range(a, b)) for a, b in zip(cuts[:-1], cuts[1:])]


@pytest.mark.parametrize("f,w,s", CASES)
def test_partition_merge_round_trip(f, w, s):
    x = torch.randn(2, f, 3, 5)
    full, boundary = window_partition(x, w, s)
    assert torch.equal(window_merge(full, boundary, f, w, s), x)


@pytest.mark.parametrize("f,w,s", CASES)
def test_partition_equals_cyclic_shift_then_cut(f, w, s):
    x = torch.arange(2 * f).view(2, f).float()
    full, boundary = window_partition(x, w, s)
    lay = window_layout(f, w, s)
    rolled = cyclic_shift(x, lay.shift)
    m = lay.num_full
    if m:
        assert torch.equal(full, rolled[:, : m * w].reshape(2 * m, w))
    else:
        assert full is None
    if lay.boundary_frames:
        assert torch.equal(boundary, rolled[:, m * w :])
    else:
        assert boundary is None


@pytest.mark.parametrize("f,w,s", CASES)
def test_segment_ids_and_positions_match_reference(f, w, s):
    segs = _segments(f, w, s)
    ids = window_segment_ids(f, w, s)
    pos = window_positions(f, w, s)
    for k, seg in enumerate(segs):
        assert ids[seg].tolist() == [k] * len(seg)
        assert pos[seg].tolist() == list(range(len(seg)))
    assert all(len(seg) <= w for seg in segs)


def test_shifted_layout_example():
    # 7 frames, window 4, shift 2: head [0,1], full [2..5], tail [6]; boundary = [6 | 0, 1].
    lay = window_layout(7, 4, 2)
    assert (lay.shift, lay.num_full, lay.tail, lay.boundary_frames) == (2, 1, 1, 3)
    assert lay.boundary_needs_mask
    x = torch.arange(7).view(1, 7)
    full, boundary = window_partition(x, 4, 2)
    assert full.tolist() == [[2, 3, 4, 5]]
    assert boundary.tolist() == [[6, 0, 1]]
    assert window_positions(7, 4, 2).tolist() == [0, 1, 0, 1, 2, 3, 0]


def test_boundary_mask_blocks():
    mask = boundary_window_mask(7, 4, 2, tokens_per_frame=2)
    # boundary frames [6 | 0, 1] -> tokens [6, 6 | 0, 0, 1, 1]
    assert mask.shape == (6, 6)
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[:2, :2] = True
    expected[2:, 2:] = True
    assert torch.equal(mask, expected)
    # unshifted or aligned: the boundary window is a single segment
    assert boundary_window_mask(7, 4, 0) is None
    assert boundary_window_mask(5, 2, 1) is None  # head [0], full [1,2] [3,4], no tail
    assert boundary_window_mask(6, 2, 1).shape == (2, 2)  # tail [5] | head [0]


def test_boundary_mask_matches_segments():
    for f, w, s in CASES:
        lay = window_layout(f, w, s)
        mask = boundary_window_mask(f, w, s)
        if mask is None:
            assert not lay.boundary_needs_mask
            continue
        frames = cyclic_shift(torch.arange(f), lay.shift, dim=0)[lay.num_full * w :]
        ids = window_segment_ids(f, w, s)[frames]
        assert torch.equal(mask, ids[:, None] == ids[None, :])


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_window_raises(bad):
    with pytest.raises(ValueError, match="window"):
        window_layout(5, bad)


def test_bad_shift_raises():
    with pytest.raises(ValueError, match="shift"):
        window_layout(5, 2, 2)
