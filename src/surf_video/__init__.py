"""surf-video: Signature-Retained Fast Video Generation (SURF) for flow-matching video models.

Heavy imports (torch, diffusers) happen on first use of the exported names.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "SURFPipeline", "SURFPipelineOutput", "RefinerTransformer3DModel"]


def __getattr__(name):
    if name in ("SURFPipeline", "SURFPipelineOutput"):
        from .pipelines import surf_pipeline

        return getattr(surf_pipeline, name)
    if name == "RefinerTransformer3DModel":
        from .models.refiner import RefinerTransformer3DModel

        return RefinerTransformer3DModel
    raise AttributeError(f"module 'surf_video' has no attribute {name!r}")
