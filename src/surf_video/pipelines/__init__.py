"""SURFPipeline and the adapters to diffusers base pipelines."""

from .adapters import HunyuanVideoAdapter, WanAdapter, adapter_for
from .surf_pipeline import SURFPipeline, SURFPipelineOutput

__all__ = ["SURFPipeline", "SURFPipelineOutput", "WanAdapter", "HunyuanVideoAdapter", "adapter_for"]
