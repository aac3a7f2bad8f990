"""Context parallelism (several GPUs for one video) for SURF, on top of diffusers' ``enable_parallelism``.

Launch under ``torchrun --nproc_per_node N``; every rank runs the same SURF call with the same seed. The base
transformer splits its tokens over the ranks (diffusers' Ulysses or ring attention, Wan's ``_cp_plan``) and
gathers them after ``proj_out``, so every rank holds the full latent between steps and the stage switch
(resize + re-noise) runs unchanged on each rank. The refiner's temporal-window attention runs Ulysses
(:mod:`surf_video.models.ulysses`); ring is not implemented for windows, so with ``ring_degree`` the base uses
ring and the refiner Ulysses of the same degree.

>>> info = init_distributed()                       # torchrun sets RANK / WORLD_SIZE / LOCAL_RANK
>>> surf = load_pipeline(base, refiner, device=info.device, dtype="bf16")
>>> enable_context_parallel(surf, ulysses_degree=info.world_size)
>>> out = surf(prompt, generator=torch.Generator(info.device).manual_seed(0), ...)
>>> if is_main_process(): write(out)
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from unittest import mock

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

__all__ = [
    "DistInfo", "PARALLEL_MODES", "init_distributed", "is_main_process", "enable_context_parallel",
    "enable_model_context_parallel", "disable_context_parallel", "context_parallel_degree",
    "check_context_parallel_sizes",
]

PARALLEL_MODES = ("ulysses", "ring")
# CP-capable diffusers backends whose forward op returns the log-sum-exp that ring attention merges with.
_RING_BACKENDS = ("flash", "flash_hub", "_flash_3_hub", "_native_cudnn", "_native_flash", "sage", "sage_hub")


@dataclass
class DistInfo:
    """This process's place in the job: ``rank`` of ``world_size``, its ``local_rank`` and ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def init_distributed(device: str | None = None, timeout_min: float = 30.0) -> DistInfo:
    """Initialises ``torch.distributed`` from torchrun's environment (idempotent).

    NCCL with ``cuda:LOCAL_RANK`` when CUDA is available (and ``device`` is not ``'cpu'``), gloo on the CPU.

    Args:
        device: ``'cuda'``, ``'cpu'`` or ``None`` (CUDA when available).
        timeout_min: collective timeout (a rank may wait while another builds a 14B model).

    Raises:
        RuntimeError: If the process was not launched by torchrun (no ``WORLD_SIZE`` / ``RANK``).
    """
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        raise RuntimeError("context parallelism needs one process per device: launch with "
                           "`torchrun --nproc_per_node N ...` (WORLD_SIZE / RANK are not set)")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or not str(device).startswith("cpu"))
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        kwargs = {"device_id": dev} if use_cuda else {}
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=timeout_min),
                                **kwargs)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)


def is_main_process() -> bool:
    """True on rank 0, and in a process that is not part of a distributed job: the one that writes files."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def context_parallel_degree(model) -> int:
    """Ranks the model's tokens are split over (1 without context parallelism)."""
    cfg = getattr(model, "_parallel_config", None)
    cp = getattr(cfg, "context_parallel_config", None)
    return 1 if cp is None else int(cp.ring_degree * cp.ulysses_degree)


def _degrees(ulysses_degree, ring_degree) -> tuple[str, int]:
    u, r = int(ulysses_degree or 1), int(ring_degree or 1)
    if (u > 1) == (r > 1):
        raise ValueError(f"give exactly one of ulysses_degree or ring_degree (> 1), got ulysses_degree="
                         f"{ulysses_degree}, ring_degree={ring_degree}")
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("torch.distributed is not initialized: launch with torchrun and call init_distributed()")
    degree = max(u, r)
    if degree != dist.get_world_size():
        raise ValueError(f"{'ulysses' if u > 1 else 'ring'}_degree={degree} must equal the number of processes "
                         f"({dist.get_world_size()}): one rank per device, all in one context-parallel group")
    return ("ulysses" if u > 1 else "ring"), degree


def _active_backend(model) -> str:
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    for module in model.modules():
        proc = getattr(module, "processor", None)
        if proc is not None and getattr(proc, "_attention_backend", None) is not None:
            return str(getattr(proc._attention_backend, "value", proc._attention_backend))
    name, _ = _AttentionBackendRegistry.get_active_backend()
    return str(getattr(name, "value", name))


def _ensure_backend(model, mode: str) -> str:
    """Sets a backend that supports ``mode`` when the current one does not; returns the backend in use."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    current = _active_backend(model)
    if mode == "ulysses":
        if current in _AttentionBackendRegistry._supports_context_parallel:
            return current
        want = "native"
    else:
        if current in _RING_BACKENDS:
            return current
        if model.device.type != "cuda":
            raise NotImplementedError(
                "ring_degree: ring attention needs a backend that returns the log-sum-exp "
                f"({', '.join(_RING_BACKENDS)}); all of them are CUDA-only (PyTorch's SDPA gives no LSE on the CPU). "
                "Use ulysses_degree on the CPU")
        if model.dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"ring_degree: ring attention through cuDNN needs bf16 or fp16 weights, got {model.dtype}")
        want = "_native_cudnn"
    logger.info("context parallelism (%s): attention backend %r -> %r for %s", mode, current, want,
                type(model).__name__)
    model.set_attention_backend(want)
    return want


@contextlib.contextmanager
def _cpu_device_count():
    # diffusers' _resolve_parallel_config computes `rank % torch.accelerator.device_count()`, which divides by
    # zero on a machine without accelerators; the device it computes is recorded and never used.
    if torch.accelerator.device_count() > 0:
        yield
    else:
        with mock.patch("torch.accelerator.device_count", return_value=1):
            yield


def _mesh(ring: int, ulysses: int):
    from torch.distributed.device_mesh import init_device_mesh

    device_type = "cuda" if dist.get_backend() == "nccl" else "cpu"
    return init_device_mesh(device_type, (ring, ulysses), mesh_dim_names=("ring", "ulysses"))


def _check_model(model, name: str, mode: str, degree: int) -> None:
    """What :func:`enable_model_context_parallel` needs of one model, checked before anything changes."""
    if getattr(model, "_cp_plan", None) is None:
        raise ValueError(f"context parallelism: {name} has no _cp_plan (diffusers supports Wan; HunyuanVideo not yet)")
    if context_parallel_degree(model) > 1:
        raise ValueError(f"context parallelism: {name} is already parallel; call disable_context_parallel first")
    heads = getattr(model.config, "num_attention_heads", None)
    if mode == "ulysses" and heads is not None and heads % degree:
        raise ValueError(f"ulysses_degree={degree} must divide {name}'s {heads} attention heads "
                         "(Ulysses gives each rank heads / degree heads)")


def enable_model_context_parallel(model, *, ulysses_degree: int | None = None, ring_degree: int | None = None,
                                  mesh=None) -> str:
    """``model.enable_parallelism(ContextParallelConfig(...))`` after the checks; returns the attention backend.

    Raises:
        ValueError: The model has no ``_cp_plan``, its heads are not divisible by ``ulysses_degree``, or it is
            already parallel.
    """
    from diffusers import ContextParallelConfig

    mode, degree = _degrees(ulysses_degree, ring_degree)
    _check_model(model, type(model).__name__, mode, degree)
    backend = _ensure_backend(model, mode)
    cfg = ContextParallelConfig(ulysses_degree=degree if mode == "ulysses" else None,
                                ring_degree=degree if mode == "ring" else None, mesh=mesh)
    with _cpu_device_count():
        model.enable_parallelism(config=cfg)
    return backend


def disable_context_parallel(model) -> None:
    """Undoes :func:`enable_model_context_parallel`: removes the split / gather hooks and the processors' config."""
    from diffusers.hooks.context_parallel import remove_context_parallel

    if context_parallel_degree(model) == 1:
        return
    remove_context_parallel(model, model._cp_plan)
    for module in model.modules():
        proc = getattr(module, "processor", None)
        if proc is not None and "_parallel_config" in vars(proc):
            del proc._parallel_config  # back to the class default (None)
    model._parallel_config = None


def enable_context_parallel(pipe, ulysses_degree: int | None = None, ring_degree: int | None = None) -> dict:
    """Context parallelism for a :class:`SURFPipeline` (base transformer(s) + refiner) or a diffusers pipeline.

    Args:
        pipe: a ``SURFPipeline`` or a diffusers pipeline with ``transformer`` (and optionally ``transformer_2``).
        ulysses_degree: Ulysses degree (= number of processes), or ``None``.
        ring_degree: ring degree (= number of processes), or ``None``; the refiner then uses Ulysses.

    Returns:
        ``{"mode", "degree", "backends": {component: attention backend}}``.

    Raises:
        ValueError / RuntimeError / NotImplementedError: before any model is changed, when a model cannot run the
            requested mode (see :func:`enable_model_context_parallel`).
    """
    mode, degree = _degrees(ulysses_degree, ring_degree)
    base = getattr(pipe, "base", pipe)
    models = {k: getattr(base, k, None) for k in ("transformer", "transformer_2")}
    models["refiner"] = getattr(pipe, "refiner", None)
    models = {k: m for k, m in models.items() if m is not None}
    for key, model in models.items():  # every check first, so a failure leaves no model half-parallel
        _check_model(model, f"{type(model).__name__} ({key})", "ulysses" if key == "refiner" else mode, degree)
        if mode == "ring" and key != "refiner" and model.device.type != "cuda":
            _ensure_backend(model, mode)  # raises the CPU explanation before anything changes
    mesh = _mesh(degree if mode == "ring" else 1, degree if mode == "ulysses" else 1)
    ref_mesh = mesh if mode == "ulysses" else _mesh(1, degree)
    backends = {}
    for key, model in models.items():
        if key == "refiner":
            backends[key] = enable_model_context_parallel(model, ulysses_degree=degree, mesh=ref_mesh)
        else:
            backends[key] = enable_model_context_parallel(model, mesh=mesh, **{f"{mode}_degree": degree})
    if mode == "ring" and "refiner" in models:
        logger.info("context parallelism: ring_degree=%d for the base; the refiner's windowed attention uses "
                    "Ulysses (ulysses_degree=%d): ring is not implemented for temporal windows", degree, degree)
    return {"mode": mode, "degree": degree, "backends": backends}


def _tokens(patch, frames_latent: int, h_latent: int, w_latent: int) -> tuple[int, int, int]:
    pt, ph, pw = patch
    return frames_latent // pt, h_latent // ph, w_latent // pw


def check_context_parallel_sizes(surf, stage_sizes, run_stages, num_frames: int, height: int | None,
                                 width: int | None) -> None:
    """Raises a ``ValueError`` naming the stage when its token count is not divisible by the parallel degree.

    Args:
        surf: the ``SURFPipeline``.
        stage_sizes: pixel ``(h, w)`` of every preview stage.
        run_stages: indices of the stages that run (have steps).
        num_frames: video frames; height, width: refined size (``None``: no refinement).
    """
    a = surf.adapter
    lf = (num_frames - 1) // a.temporal_factor + 1
    sf = a.spatial_factor
    checks = []
    deg = context_parallel_degree(a.transformer)
    if deg > 1:
        for i in run_stages:
            h, w = stage_sizes[i]
            label = "base" if i == 0 else "preview"
            checks.append((f"stage {i} ({label}, {h}x{w}, {num_frames} frames)", a.patch_size, h, w, deg))
    ref = surf.refiner
    if ref is not None and height is not None and context_parallel_degree(ref) > 1:
        checks.append((f"refine ({height}x{width}, {num_frames} frames)", tuple(ref.config.patch_size), height,
                       width, context_parallel_degree(ref)))
    for label, patch, h, w, d in checks:
        f, hh, ww = _tokens(patch, lf, h // sf, w // sf)
        if (f * hh * ww) % d:
            raise ValueError(
                f"context parallelism: {label} has {f}x{hh}x{ww} = {f * hh * ww} tokens, not divisible by the "
                f"parallel degree {d}; pick a size or frame count whose token count {d} divides")
