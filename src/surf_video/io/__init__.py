"""Video reading and writing (PyAV, imported on first use: ``surf_video.io.formats`` needs no PyAV)."""

__all__ = ["read_video", "read_video_frames", "write_video"]


def __getattr__(name: str):
    if name in __all__:
        from surf_video.io import video

        return getattr(video, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
