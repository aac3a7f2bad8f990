"""Decoding, scoring, cost and summary of the signature benchmark (moved out of
:mod:`surf_video.bench.signature`, which re-exports them).

Videos are decoded in same-size chunks; each (method, sample) video is read by the world evaluator and scored
against the reference at the scoring size (:func:`_score_sample`, picklable for worker processes), and the
final latents are compared without the decoder (:func:`_latent_scores`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.reshift import resize_latent
from . import metrics as M

__all__ = ["decode_many", "score_sample", "latent_scores", "make_pool", "transformer_flops", "transformer_flop_parts",
           "summarize",
           "SUMMARY_METRICS"]


@torch.no_grad()
def _decode_many(surf, latents: list[torch.Tensor], chunk: int) -> list[np.ndarray]:
    """Decodes single latents ``[C, F, h, w]`` of mixed sizes to uint8 videos ``[T, H, W, 3]``, in order.

    Latents of one size are decoded together in chunks of ``chunk``: the Wan VAE on a CPU is dominated by
    per-call overhead at these sizes (about 4x less time per video at 16 per call than at 1).
    """
    out: list[np.ndarray | None] = [None] * len(latents)
    groups: dict[tuple, list[int]] = {}
    for i, lat in enumerate(latents):
        groups.setdefault(tuple(lat.shape), []).append(i)
    for idx in groups.values():
        for c in range(0, len(idx), chunk):
            part = idx[c : c + chunk]
            videos = _decode_uint8(surf, torch.stack([latents[i] for i in part]), len(part))
            for i, v in zip(part, videos):
                out[i] = v
    return out


@torch.no_grad()
def _decode_uint8(surf, latents, batch: int) -> list[np.ndarray]:
    """Decodes transformer-space latents (``[B, C, F, h, w]``, or a list of ``[C, F, h, w]`` of mixed sizes) to
    uint8 videos ``[T, H, W, 3]``, in chunks of ``batch``."""
    if isinstance(latents, (list, tuple)):
        return [v for lat in latents for v in _decode_uint8(surf, lat[None], 1)]
    out = []
    for i in range(0, latents.shape[0], batch):
        v = surf.adapter.decode(latents[i : i + batch], "np")
        out.extend(np.clip(np.round(np.asarray(v) * 255.0), 0, 255).astype(np.uint8))
    return out


def _scene(video: np.ndarray, caption: str) -> dict:
    """The world evaluator's reading of a clip plus its foreground (any palette colour) mask."""
    from ..world import evaluate_video
    from ..world.evaluate import segment_colors

    rep = evaluate_video(video, caption)
    rep["foreground"] = segment_colors(video)[1]
    return rep


def _score(rep: dict, ref: dict, video: np.ndarray, ref_video: np.ndarray) -> dict:
    """Signature metrics of one video against the reference (both already at the scoring size)."""
    iou = M.mask_iou(rep["masks"], ref["masks"])
    fg = M.foreground_iou(rep["foreground"], ref["foreground"])
    out = {
        "iou": _nanmean(iou),
        "fg_iou": _nanmean(fg),
        "ssim": M.ssim(video, ref_video),
        "track_err_px": M.track_error(rep["centroids"], ref["centroids"]),
        "dir_agree": M.direction_agreement(rep["centroids"], ref["centroids"]),
        "attr_agree_ref": M.attribute_agreement(rep, ref),
    }
    out.update({f"prompt_{k}": v for k, v in M.prompt_adherence(rep).items()})
    return out


def _score_sample(task: tuple[str, dict[str, np.ndarray]]) -> tuple[dict, dict]:
    """Scores every method's video of one sample against its reference (runs in a worker process).

    Args:
        task: ``(caption, {method: uint8 [T, P, P, 3]} plus "reference_full": the reference at R)``.

    Returns:
        ``(prompt adherence of the reference at R, {method: metrics})``.
    """
    caption, videos = task
    ref_vid = videos["reference"]
    ref = _scene(ref_vid, caption)
    full = M.prompt_adherence(_scene(videos["reference_full"], caption))
    scores = {}
    for name, video in videos.items():
        if name == "reference_full":
            continue
        rep = ref if name == "reference" else _scene(video, caption)
        scores[name] = _score(rep, ref, video, ref_vid)
    return full, scores


def _pool(workers: int):
    """A process pool for scoring, or None for in-process scoring.

    Spawned, not forked: a fork after torch has started its OpenMP threads can hang the children.
    """
    if workers <= 1:
        return None
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_worker_init)


def _worker_init() -> None:
    torch.set_num_threads(1)


def _latent_scores(lat: torch.Tensor, ref: torch.Tensor, preview_size: int, spatial_factor: int) -> dict:
    """Decoder-free agreement of a method's final latent with the reference's, both area-resized to the
    preview's latent grid: Pearson correlation (channel means removed) and relative L2 error.

    These do not depend on the VAE decoder (SURF-Mini v0's decoder ignores its latent, see the model card);
    the reference downsized in latent space is not what the model makes at P, so read them relative to
    direct low-resolution inference.
    """
    size = (preview_size // spatial_factor, preview_size // spatial_factor)
    x = resize_latent(lat[None].float().cpu(), size, "area")[0]
    y = resize_latent(ref[None].float().cpu(), size, "area")[0]
    xc = x - x.mean(dim=(1, 2, 3), keepdim=True)
    yc = y - y.mean(dim=(1, 2, 3), keepdim=True)
    corr = float((xc * yc).sum() / (xc.norm() * yc.norm()).clamp_min(1e-12))
    rel = float((x - y).norm() / y.norm().clamp_min(1e-12))
    return {"latent_corr": corr, "latent_rel_err": rel}


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


decode_many, score_sample, latent_scores, make_pool = _decode_many, _score_sample, _latent_scores, _pool


# ---- cost ------------------------------------------------------------------------------------------------
def transformer_flops(config, num_tokens: int, text_len: int, attention_products: bool = True) -> float:
    """Analytic FLOPs (2 x multiply-adds) of one ``WanTransformer3DModel`` forward pass, batch 1.

    Counts the matrix products: patch embedding, per block self-attention (q, k, v, o projections and
    the ``L x L`` score and value products), cross-attention to ``text_len`` text tokens, the feed-forward
    network, the text embedder and the output projection. Norms, modulation and RoPE are left out
    (under 1 % at these sizes).

    Args:
        config: the transformer's config (``num_attention_heads``, ``attention_head_dim``, ``ffn_dim``,
            ``num_layers``, ``in_channels``, ``out_channels``, ``patch_size``, ``text_dim``).
        num_tokens: L, latent tokens after patching.
        text_len: S, text tokens (WanPipeline pads to ``max_sequence_length``).
        attention_products: count the ``Q K^T`` and ``A V`` products (off: only the weight products, which
            is what ``torch.utils.flop_counter`` sees when attention runs through a fused kernel it skips).
    """
    p = transformer_flop_parts(config, num_tokens, text_len, attention_products)
    return config.num_layers * (p["self"] + p["cross"] + p["ffn"]) + p["outside"]


def transformer_flop_parts(config, num_tokens: int, text_len: int, attention_products: bool = True) -> dict:
    """:func:`transformer_flops` by component: one block's ``'self'`` attention, ``'cross'`` attention and
    ``'ffn'``, and ``'outside'`` the blocks (patch embedding, output projection, text embedder), batch 1."""
    d = config.num_attention_heads * config.attention_head_dim
    pt, ph, pw = config.patch_size
    patch = pt * ph * pw
    L, S = num_tokens, text_len
    qk = 1 if attention_products else 0  # the Q K^T and A V products
    return {
        "self": 2.0 * (4 * L * d * d + qk * 2 * L * L * d),
        "cross": 2.0 * (2 * L * d * d + 2 * S * d * d + qk * 2 * L * S * d),
        "ffn": 2.0 * (2 * L * d * config.ffn_dim),
        "outside": 2.0 * (L * config.in_channels * patch * d + L * d * config.out_channels * patch
                          + S * (config.text_dim * d + d * d)),
    }


def _flops_per_video(transformer_config, evals: dict, cfg, spatial_factor: int,
                     temporal_factor: int) -> float:
    pt, ph, pw = transformer_config.patch_size
    f = ((cfg.num_frames - 1) // temporal_factor + 1) // pt
    total = 0.0
    for key, n in evals.items():
        side = (cfg.base_size if key == "base" else cfg.preview_size) // spatial_factor
        tokens = f * (side // ph) * (side // pw)
        total += n * transformer_flops(transformer_config, tokens, cfg.max_sequence_length)
    return total


def _tokens(cfg, a, size: int) -> int:
    pt, ph, pw = a.patch_size
    f = ((cfg.num_frames - 1) // a.temporal_factor + 1) // pt
    side = size // a.spatial_factor
    return f * (side // ph) * (side // pw)


# ---- summary ---------------------------------------------------------------------------------------------
SUMMARY_METRICS = ("iou", "fg_iou", "ssim", "attr_agree_ref", "prompt_all_correct", "prompt_color", "prompt_shape",
                   "prompt_motion", "prompt_count", "prompt_size", "track_err_px", "dir_agree", "forwards", "flops",
                   "seconds", "latent_corr", "latent_rel_err")


def summarize(samples: list[dict], method_names: list[str]) -> dict:
    """Per method and metric: mean over samples where defined, 95 % half-width (1.96 s / sqrt(n)) and n.

    Also ``switch_mean`` (mean switch step of 'auto' runs) where a method switched once per video.
    """
    out = {}
    for name in method_names:
        rows = [s["methods"][name] for s in samples if name in s["methods"]]
        stats = {}
        for key in SUMMARY_METRICS:
            x = np.asarray([r[key] for r in rows], dtype=np.float64)
            x = x[np.isfinite(x)]
            n = int(x.size)
            mean = float(x.mean()) if n else float("nan")
            ci = float(1.96 * x.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
            stats[key] = {"mean": mean, "ci95": ci, "n": n}
        shares = [r["compute_share"] for r in rows if "compute_share" in r]
        if shares:  # acceleration rows: share of the block FLOPs that really ran
            stats["compute_share"] = {"mean": float(np.nanmean(shares)), "n": len(shares)}
        sw = [r["switch"][0] for r in rows if isinstance(r.get("switch"), list) and len(r["switch"]) == 1]
        if sw:
            stats["switch_mean"] = float(np.mean(sw))
        out[name] = stats
    if "reference" in out:
        full = [s["reference_full_size"]["all_correct"] for s in samples if "reference_full_size" in s]
        out["reference"]["prompt_all_correct_full_size"] = float(np.mean(full)) if full else float("nan")
    return out
