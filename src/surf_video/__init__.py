"""surf-video: Signature-Retained Fast Video Generation (SURF) for flow-matching video models."""

__version__ = "0.1.0"

__all__ = ["__version__"]
