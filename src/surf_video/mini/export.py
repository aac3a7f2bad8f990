"""Store SURF-Mini weights compactly: every floating-point tensor of a folder's safetensors in fp16."""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["halve_safetensors", "shard_safetensors", "folder_size_mb"]


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


def shard_safetensors(folder: str | os.PathLike, max_shard_mb: float = 15.0) -> list[Path]:
    """Split every ``NAME.safetensors`` under ``folder`` larger than ``max_shard_mb`` MB into diffusers' shards.

    Each becomes ``NAME-00001-of-0000N.safetensors``, ... plus ``NAME.safetensors.index.json`` (the single file is
    removed); ``from_pretrained`` loads either layout. Keeps every shipped file small enough for git hosts that
    warn on large blobs. Returns the shard files written.

    Raises:
        FileNotFoundError: If ``folder`` is not a directory.
        ValueError: If ``max_shard_mb`` is not positive or one tensor alone is larger than it.
    """
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"folder: no directory at {folder}")
    if not max_shard_mb > 0:
        raise ValueError(f"max_shard_mb must be > 0, got {max_shard_mb!r}")
    limit = int(max_shard_mb * 1e6)
    written = []
    for f in sorted(Path(folder).rglob("*.safetensors")):
        if f.stat().st_size > limit and not f.with_name(f.name + ".index.json").exists():
            written += _shard_file(f, limit)
    return written


def _shard_file(f: Path, limit: int) -> list[Path]:
    import json

    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import load_file, save_file

    sd = load_file(f)
    nbytes = {k: v.numel() * v.element_size() for k, v in sd.items()}
    # the limit is on file sizes: leave room for a header that lists every tensor (name, dtype, shape, offsets)
    data_limit = limit - 64 - sum(len(k) + 128 for k in sd)
    if max(nbytes.values()) > data_limit:
        raise ValueError(f"max_shard_mb={limit / 1e6} is smaller than the tensor {max(nbytes, key=nbytes.get)} in {f}")
    split = split_torch_state_dict_into_shards(sd, filename_pattern=f.stem + "{suffix}.safetensors",
                                               max_shard_size=data_limit)
    if not split.is_sharded:  # the header alone pushed the file over the limit
        return []
    written = []
    for name, keys in split.filename_to_tensors.items():  # each shard written atomically, the index last
        tmp = f.with_name(name + ".tmp")
        save_file({k: sd[k].contiguous() for k in keys}, tmp, metadata={"format": "pt"})
        os.replace(tmp, f.with_name(name))
        written.append(f.with_name(name))
    index = {"metadata": {"total_size": sum(nbytes.values())}, "weight_map": dict(sorted(split.tensor_to_filename.items()))}
    tmp = f.with_name(f.name + ".index.json.tmp")
    tmp.write_text(json.dumps(index, indent=2) + "\n")
    os.replace(tmp, f.with_name(f.name + ".index.json"))
    f.unlink()
    return written


def folder_size_mb(folder: str | os.PathLike) -> float:
    """Total size of the files under ``folder`` in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6
