"""Video reading and writing (PyAV)."""

from surf_video.io.video import read_video, read_video_frames, write_video

__all__ = ["read_video", "read_video_frames", "write_video"]
