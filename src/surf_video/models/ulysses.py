"""Ulysses all-to-all exchanges for the refiner's temporal-window attention under context parallelism.

Under diffusers' context parallelism every rank holds a contiguous chunk of the token sequence
(``[B, N / P, H, D]``, rank ``r`` holding tokens ``[r N / P, (r + 1) N / P)``). Windowed attention needs
whole frames and the full-sequence RoPE plan, so the refiner trades the sequence split for a head split
(``[B, N, H / P, D]``, rank ``r`` holding heads ``[r H / P, (r + 1) H / P)``), attends locally and trades
back. The two exchanges are exact permutations of the data: the per-rank result equals the single-process
one up to the attention kernel's own arithmetic.
"""

from __future__ import annotations

import torch

__all__ = ["seq_to_heads", "heads_to_seq", "ulysses_group"]


def ulysses_group(parallel_config) -> tuple[object, int]:
    """The Ulysses process group and degree of a diffusers ``ParallelConfig`` (``context_parallel_config`` set).

    Raises:
        NotImplementedError: If ``ring_degree > 1`` (the windowed attention has no ring variant).
    """
    cp = parallel_config.context_parallel_config
    if cp.ring_degree > 1:
        raise NotImplementedError(
            f"ContextParallelConfig(ring_degree={cp.ring_degree}) is not supported by the refiner's temporal-window "
            "attention; use ContextParallelConfig(ulysses_degree=N) for the refiner"
        )
    return cp._ulysses_mesh.get_group(), int(cp.ulysses_degree)


def _all_to_all(x: torch.Tensor, group) -> torch.Tensor:
    """``x [P, ...]``: chunk ``j`` goes to rank ``j``; returns ``[P, ...]`` with chunk ``j`` from rank ``j``."""
    import torch.distributed._functional_collectives as funcol

    shape = x.shape
    out = funcol.all_to_all_single(x.contiguous().flatten(), None, None, group)
    return funcol.wait_tensor(out).reshape(shape)


def seq_to_heads(x: torch.Tensor, group, degree: int) -> torch.Tensor:
    """``[B, N / P, H, D]`` (this rank's tokens, every head) -> ``[B, N, H / P, D]`` (every token, this rank's heads).

    Raises:
        ValueError: If ``H`` is not divisible by ``degree``.
    """
    b, n_loc, h, d = x.shape
    if h % degree:
        raise ValueError(
            f"context parallelism: the refiner's {h} attention heads are not divisible by ulysses_degree={degree}; "
            f"pick a degree that divides {h}"
        )
    x = x.reshape(b, n_loc, degree, h // degree, d).permute(2, 0, 1, 3, 4)  # [P, B, N/P, H/P, D]
    if degree == 1:
        return x[0]
    out = _all_to_all(x, group)  # out[j]: rank j's tokens, our heads
    return out.permute(1, 0, 2, 3, 4).reshape(b, degree * n_loc, h // degree, d)


def heads_to_seq(x: torch.Tensor, group, degree: int) -> torch.Tensor:
    """Inverse of :func:`seq_to_heads`: ``[B, N, H / P, D]`` -> ``[B, N / P, H, D]``."""
    b, n, h_loc, d = x.shape
    x = x.reshape(b, degree, n // degree, h_loc, d).permute(1, 0, 2, 3, 4)  # [P, B, N/P, H/P, D]
    if degree == 1:
        return x[0]
    out = _all_to_all(x, group)  # out[j]: our tokens, rank j's heads
    return out.permute(1, 2, 0, 3, 4).reshape(b, n // degree, degree * h_loc, d)
