"""models: the SURF Refiner transformer and its shipped configs."""

from .configs import list_refiner_configs, load_refiner_config
from .refiner import BOUNDARY_MODES, RefinerTransformer3DModel, RefinerWindowAttnProcessor, WindowPlan

__all__: list[str] = [
    "RefinerTransformer3DModel",
    "RefinerWindowAttnProcessor",
    "WindowPlan",
    "BOUNDARY_MODES",
    "list_refiner_configs",
    "load_refiner_config",
]
