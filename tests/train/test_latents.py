"""The latent cache round-trips and resumes after an interruption."""

import json

import pytest
import torch

from surf_video.train.data import ProceduralDataset, synthetic_sample
from surf_video.train.latents import CachedLatentDataset, IdentityEncoder, cache_latents
from surf_video.train.text import HashTextEncoder


def _ds(n=5):
    return ProceduralDataset(synthetic_sample, num_samples=n, num_frames=3, size=(8, 8))


def test_cache_round_trip(tmp_path):
    ds = _ds()
    cache_latents(ds, IdentityEncoder(), tmp_path / "c", text_encoder=HashTextEncoder(16, 8), shard_size=2)
    index = json.loads((tmp_path / "c" / "index.json").read_text())
    assert len(index["items"]) == 5 and index["shape"] == [3, 3, 8, 8]
    assert len(list((tmp_path / "c").glob("shard-*.safetensors"))) == 3
    cached = CachedLatentDataset(tmp_path / "c")
    ref = ds[(3, 0, 3)]
    it = cached[(3, 0, 9)]
    torch.testing.assert_close(it["z_hr"], ref["hr"])
    torch.testing.assert_close(it["z_lr"], ref["lr"])
    assert it["text"].shape == (8, 16) and it["caption"] == ref["caption"] and it["sample_id"] == 9
    cached.set_latent_frames(2)
    assert cached[(0, 0, 0)]["z_hr"].shape == (3, 2, 8, 8)
    cached.set_latent_frames(5)
    with pytest.raises(ValueError, match="frames"):
        cached[(0, 0, 0)]


def test_cache_resumes_after_interruption(tmp_path):
    ds = _ds()

    class Crashing:
        calls = 0

        def encode(self, x):
            Crashing.calls += 1
            if Crashing.calls > 6:  # 3 items (hr + lr each) then "power loss"
                raise KeyboardInterrupt
            return x

    with pytest.raises(KeyboardInterrupt):
        cache_latents(ds, Crashing(), tmp_path / "c", shard_size=2)
    # only the complete first shard (2 items) is indexed; the pending third item is not
    assert len(json.loads((tmp_path / "c" / "index.json").read_text())["items"]) == 2
    cache_latents(ds, IdentityEncoder(), tmp_path / "c", shard_size=2)
    items = json.loads((tmp_path / "c" / "index.json").read_text())["items"]
    assert sorted(it["key"] for it in items) == [f"{i}_0" for i in range(5)]
    cached = CachedLatentDataset(tmp_path / "c")
    for i in range(5):
        j = [it["key"] for it in items].index(f"{i}_0")
        torch.testing.assert_close(cached[(j, 0, 0)]["z_hr"], ds[(i, 0, i)]["hr"])
