"""Video reading and writing with PyAV.

Frames are always ``np.uint8`` arrays of shape ``[T, H, W, 3]`` (RGB). Containers are picked
by file extension: ``.mp4``/``.mov``/``.mkv`` (H.264), ``.webm`` (VP9), ``.gif``; a folder of
image frames (png/jpg/webp, sorted by name) is read with :func:`read_video_frames`.
"""

from __future__ import annotations

import io as _io
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from surf_video.io.formats import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

__all__ = [
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "read_video",
    "read_video_frames",
    "write_video",
    "encode_video_bytes",
    "decode_video_bytes",
    "probe_num_frames",
]


# codec, pixel format per container; H.264 and VP9 need even sizes with yuv420p.
_CODECS = {
    ".mp4": ("libx264", "yuv420p"),
    ".mov": ("libx264", "yuv420p"),
    ".mkv": ("libx264", "yuv420p"),
    ".webm": ("libvpx-vp9", "yuv420p"),
    ".gif": ("gif", "pal8"),
}


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape [T, H, W, 3], got {tuple(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError("frames must contain at least one frame")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    return np.ascontiguousarray(frames)


def _decode(container: av.container.InputContainer, max_frames: int | None, start: int = 0) -> np.ndarray:
    if not container.streams.video:
        raise ValueError("file has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    out: list[np.ndarray] = []
    frames = _seek_frames(container, stream, start) if start >= _SEEK_MIN else None
    if frames is None:
        frames = ((i, f) for i, f in enumerate(container.decode(stream)))
    for i, frame in frames:
        if i < start:
            continue
        out.append(frame.to_ndarray(format="rgb24"))
        if max_frames is not None and len(out) >= max_frames:
            break
    if not out:
        raise ValueError("video has no decodable frames")
    return np.stack(out)


# Below this start frame a linear decode is as cheap as a seek and needs no timestamps.
_SEEK_MIN = 32


def _seek_frames(container, stream, start: int):
    """Seek to the keyframe before frame ``start`` and yield ``(frame index, frame)`` from there.

    Frame indices come from timestamps (constant frame rate assumed). Returns ``None`` when the
    stream has no usable rate / timestamps (then the caller decodes linearly from the start).
    """
    rate = stream.average_rate or stream.guessed_rate
    if not rate or not stream.time_base or container.format.name == "gif":
        return None
    t0 = stream.start_time or 0
    # aim one frame early so rounding never lands past the wanted frame
    target = t0 + int((start - 1) / float(rate) / float(stream.time_base))
    try:
        container.seek(max(target, t0), backward=True, any_frame=False, stream=stream)
    except av.error.FFmpegError:
        container.seek(0)
        return None
    it = container.decode(stream)
    try:
        first = next(it)
    except StopIteration:
        return None
    if first.pts is None:
        container.seek(0)
        return None

    def index(frame) -> int:
        return int(round(float((frame.pts - t0) * stream.time_base) * float(rate)))

    def gen():
        yield index(first), first
        for f in it:
            if f.pts is None:
                raise ValueError("frame without timestamp after a seek")
            yield index(f), f

    return gen()


def read_video(path: str | os.PathLike, max_frames: int | None = None, start: int = 0) -> np.ndarray:
    """Decode a video file (or a folder of frames) to RGB frames.

    Args:
        path: a video file (mp4/webm/mov/mkv/avi/gif) or a folder of image frames.
        max_frames: stop after this many frames (``None``: all).
        start: skip this many frames first.

    Returns:
        ``np.uint8`` array ``[T, H, W, 3]``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file cannot be decoded or has no frames.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")
    if path.is_dir():
        return read_video_frames(path, max_frames=max_frames, start=start)
    try:
        with av.open(str(path)) as container:
            return _decode(container, max_frames, start)
    except av.error.FFmpegError as err:
        raise ValueError(f"cannot decode video {path}: {err}") from err


def read_video_frames(folder: str | os.PathLike, max_frames: int | None = None, start: int = 0) -> np.ndarray:
    """Read a folder of image frames (sorted by file name) as ``np.uint8 [T, H, W, 3]``."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"frame folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    files = files[start:]
    if max_frames is not None:
        files = files[:max_frames]
    if not files:
        raise ValueError(f"no image frames ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    frames = []
    for f in files:
        with Image.open(f) as im:
            frames.append(np.asarray(im.convert("RGB")))
    shapes = {fr.shape for fr in frames}
    if len(shapes) != 1:
        raise ValueError(f"frames in {folder} have different sizes: {sorted(shapes)}")
    return np.stack(frames)


def _encode(container, frames: np.ndarray, fps: float, codec: str, pix_fmt: str, crf: int | None,
            keyframe_interval: int | None = None) -> None:
    t, h, w, _ = frames.shape
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
    stream.width, stream.height = w, h
    stream.pix_fmt = pix_fmt
    if codec == "libx264":
        stream.options = {"crf": str(23 if crf is None else int(crf)), "preset": "veryfast"}
    elif codec == "libvpx-vp9":
        stream.options = {"crf": str(32 if crf is None else int(crf)), "b": "0", "deadline": "realtime", "cpu-used": "8"}
    if keyframe_interval:
        stream.options = {**stream.options, "g": str(int(keyframe_interval))}
    for i in range(t):
        frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    # PIL builds an adaptive palette per frame; FFmpeg's rgb24 -> pal8 conversion is not
    # available in every PyAV build.
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    duration = max(int(round(1000 / fps)), 10)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)


def _even(frames: np.ndarray) -> np.ndarray:
    # yuv420p needs even width and height: replicate the last row/column when odd.
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frames


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 16, crf: int | None = None,
                keyframe_interval: int | None = None) -> Path:
    """Write RGB frames to a video file; the container comes from the extension.

    Args:
        path: output file, ``.mp4``/``.mov``/``.mkv`` (H.264), ``.webm`` (VP9) or ``.gif``.
        frames: ``np.uint8 [T, H, W, 3]``. Odd sizes are padded by one edge pixel for H.264/VP9.
        fps: frames per second (> 0).
        crf: constant rate factor for H.264/VP9 (lower is better quality); default 23 / 32.
        keyframe_interval: frames between keyframes (H.264/VP9; default: the codec's).

    Returns:
        The written path. The file is written to a temporary name and renamed, so a crash
        never leaves a truncated video under ``path``.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _CODECS:
        raise ValueError(f"path must end with one of {sorted(_CODECS)}, got {path.name!r}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    frames = _check_frames(frames)
    codec, pix_fmt = _CODECS[ext]
    if codec != "gif":
        frames = _even(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{ext}")
    try:
        if codec == "gif":
            _write_gif(tmp, frames, fps)
        else:
            with av.open(str(tmp), mode="w") as container:
                _encode(container, frames, fps, codec, pix_fmt, crf, keyframe_interval)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def encode_video_bytes(frames: np.ndarray, fps: float = 16, crf: int = 23, codec: str = "libx264") -> bytes:
    """Encode frames in memory (H.264 in mp4 by default); used by codec degradations."""
    frames = _even(_check_frames(frames))
    buf = _io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        _encode(container, frames, fps, codec, "yuv420p", crf)
    return buf.getvalue()


def decode_video_bytes(data: bytes) -> np.ndarray:
    """Decode an in-memory video to ``np.uint8 [T, H, W, 3]``."""
    with av.open(_io.BytesIO(data), mode="r") as container:
        return _decode(container, None)


def probe_num_frames(path: str | os.PathLike) -> int:
    """Number of frames of a video (from the stream header when present, else by decoding)."""
    path = Path(path)
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} has no video stream")
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            return sum(1 for _ in container.decode(stream))
    except av.error.FFmpegError as err:
        raise ValueError(f"cannot decode video {path}: {err}") from err
