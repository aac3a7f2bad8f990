"""Store SURF-Mini weights compactly: every floating-point tensor of a folder's safetensors in fp16."""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["halve_safetensors", "folder_size_mb"]


def halve_safetensors(folder: str | os.PathLike) -> list[Path]:
    """Rewrite every ``*.safetensors`` under ``folder`` with float tensors cast to float16 (atomically).

    Loading with ``torch_dtype=torch.float32`` upcasts again. Returns the rewritten files.
    """
    from safetensors.torch import load_file, save_file

    done = []
    for f in sorted(Path(folder).rglob("*.safetensors")):
        sd = load_file(f)
        for k, v in sd.items():
            if v.is_floating_point():
                if v.abs().max().item() > 6.0e4:
                    raise ValueError(f"{f}:{k} exceeds the float16 range")
                sd[k] = v.to(torch.float16).contiguous()
        tmp = f.with_suffix(".tmp")
        save_file(sd, tmp, metadata={"format": "pt"})
        os.replace(tmp, f)
        done.append(f)
    return done


def folder_size_mb(folder: str | os.PathLike) -> float:
    """Total size of the files under ``folder`` in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6
