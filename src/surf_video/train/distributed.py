"""FSDP helpers of the refiner trainer: FSDP on CPU (gloo), full weights out of sharded parameters.

Under FSDP2 (``torch.distributed.fsdp.fully_shard``, what ``configs/refiner/accelerate/fsdp2.yaml``
selects) every parameter is a ``DTensor`` holding this rank's shard. Gathering a full tensor
(``full_tensor()``) is a collective: every function here that gathers must be called on every rank.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

__all__ = ["enable_fsdp_on_cpu", "fsdp_requested", "full_tensors", "is_fsdp", "reshard", "save_plain_model", "shard_like"]

logger = logging.getLogger(__name__)


def fsdp_requested() -> bool:
    """``accelerate launch --use_fsdp`` / a config with ``distributed_type: FSDP`` sets this variable."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def enable_fsdp_on_cpu(accelerator) -> bool:
    """Switch a multi-process CPU (gloo) accelerator to FSDP when FSDP was asked for.

    accelerate 1.15 only turns ``distributed_type: FSDP`` on for accelerator devices (CUDA, XPU,
    NPU, ...); on a CPU-only host it silently falls back to ``MULTI_CPU`` (DDP over gloo) and the
    FSDP config is ignored. torch's ``fully_shard`` itself runs on a CPU device mesh over gloo, so
    we set the state accelerate would have set: ``distributed_type = FSDP`` (in both shared states:
    every new ``AcceleratorState()`` copies ``PartialState``'s value back) and the FSDP plugin read
    from the launcher's environment. Returns whether it switched.
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = accelerator.state
    if not fsdp_requested() or state.distributed_type != DistributedType.MULTI_CPU:
        return False
    plugin = FullyShardedDataParallelPlugin()  # fsdp_version, wrap policy, state-dict type from FSDP_* env
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    if accelerator.is_main_process:
        logger.warning("FSDP on CPU: accelerate ignores FSDP without an accelerator device; running torch "
                       "fully_shard over gloo (FSDP%d, %s)", plugin.fsdp_version, plugin.state_dict_type)
    return True


def is_fsdp(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def full_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU copies of ``tensors`` with every ``DTensor`` gathered in full (collective: call on every rank)."""
    from torch.distributed.tensor import DTensor

    out = {}
    for k, v in tensors.items():
        if isinstance(v, DTensor):
            v = v.full_tensor()
        out[k] = v.detach().to("cpu").contiguous()
    return out


def shard_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``full`` laid out as ``like`` (a ``DTensor`` shard: this rank's slice; a tensor: same device).

    Every rank holds the same ``full`` (read from the same file), so slicing locally needs no
    communication.
    """
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(like, DTensor):
        return distribute_tensor(full.to(like.device_mesh.device_type), like.device_mesh, like.placements,
                                 src_data_rank=None)
    return full.to(like.device)


def reshard(model: torch.nn.Module) -> None:
    """Free the gathered parameters of every FSDP2 unit in ``model`` (parameters are shards again).

    FSDP2 keeps the root unit gathered after a forward (it expects the backward to follow); a
    forward without backward (validation) leaves plain tensors where the shards were.
    """
    from torch.distributed.fsdp import FSDPModule

    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


def save_plain_model(model_cls, config, state_dict: dict[str, torch.Tensor], path: str | Path) -> None:
    """``save_pretrained`` a fresh ``model_cls(config)`` holding ``state_dict`` (strict).

    Used for FSDP exports: the prepared model's class is torch's ``FSDP<Name>`` subclass, whose name
    would be written into ``config.json``; the fresh model is built on the meta device (no random
    init of a billion weights) and takes the gathered tensors as they are.
    """
    with torch.device("meta"):
        plain = model_cls.from_config(config)
    plain.load_state_dict(state_dict, strict=True, assign=True)
    plain.save_pretrained(str(path), safe_serialization=True)
