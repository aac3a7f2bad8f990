"""Round trips of surf_video.io.video."""

import numpy as np
import pytest
from PIL import Image

from surf_video.io.video import (
    decode_video_bytes,
    encode_video_bytes,
    probe_num_frames,
    read_video,
    read_video_frames,
    write_video,
)


def _clip(t=6, h=32, w=48):
    rng = np.random.default_rng(0)
    # smooth content so lossy codecs keep it close
    y, x = np.mgrid[0:h, 0:w]
    frames = np.stack([np.stack([(x * 5 + i * 10) % 256, (y * 7) % 256, np.full_like(x, 128)], -1) for i in range(t)])
    return frames.astype(np.uint8) + rng.integers(0, 2, frames.shape, dtype=np.uint8)


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".gif", ".mov"])
def test_round_trip(tmp_path, ext):
    frames = _clip()
    path = write_video(tmp_path / f"a{ext}", frames, fps=8)
    out = read_video(path)
    assert out.dtype == np.uint8 and out.shape == frames.shape
    if ext != ".gif":  # gif palette quantisation is coarse
        assert np.abs(out.astype(int) - frames.astype(int)).mean() < 12
    assert probe_num_frames(path) == 6
    assert not list(tmp_path.glob(".*tmp*"))


def test_odd_size_padded(tmp_path):
    frames = _clip(h=31, w=45)
    out = read_video(write_video(tmp_path / "odd.mp4", frames))
    assert out.shape == (6, 32, 46, 3)


def test_frames_folder_and_slicing(tmp_path):
    frames = _clip(t=5)
    for i, fr in enumerate(frames):
        Image.fromarray(fr).save(tmp_path / f"{i:03d}.png")
    out = read_video_frames(tmp_path)
    np.testing.assert_array_equal(out, frames)
    np.testing.assert_array_equal(read_video(tmp_path, max_frames=2, start=1), frames[1:3])


def test_bytes_round_trip():
    frames = _clip()
    out = decode_video_bytes(encode_video_bytes(frames, crf=18))
    assert out.shape == frames.shape


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(ValueError):
        read_video(bad)
    with pytest.raises(ValueError, match="frames"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="path"):
        write_video(tmp_path / "x.xyz", _clip())


@pytest.mark.parametrize("ext", [".mp4", ".webm"])
def test_seek_matches_linear_decode(tmp_path, ext):
    frames = _clip(t=100, h=16, w=16)
    frames[:, 0, 0, 0] = np.arange(100)  # distinct frames
    path = write_video(tmp_path / f"long{ext}", frames, fps=10, keyframe_interval=10)
    everything = read_video(path)
    for start in (32, 47, 50, 95):
        np.testing.assert_array_equal(read_video(path, max_frames=3, start=start), everything[start : start + 3])
