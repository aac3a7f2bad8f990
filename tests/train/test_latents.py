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


def test_wan_vae_encoder_round_trip_and_cache(tmp_path):
    from diffusers import AutoencoderKLWan

    from surf_video.train.config import EncoderConfig
    from surf_video.train.latents import build_encoder

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    vae.save_pretrained(tmp_path / "pipe" / "vae")
    enc = build_encoder(EncoderConfig(type="wan", path=str(tmp_path / "pipe")))
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    z = enc.encode(x)
    assert z.shape == (1, 16, 2, 2, 2)  # 4x temporal (1 + 4k frames), 8x spatial
    raw = vae.encode(x).latent_dist.mode()
    torch.testing.assert_close(z * enc.std + enc.mean, raw, rtol=1e-4, atol=1e-5)  # normalised like WanPipeline
    assert enc.decode(z).shape == (1, 3, 5, 16, 16)
    ds = ProceduralDataset(synthetic_sample, num_samples=2, num_frames=5, size=(16, 16))
    cache_latents(ds, enc, tmp_path / "c")
    cached = CachedLatentDataset(tmp_path / "c")
    assert cached[(1, 0, 0)]["z_lr"].shape == (16, 2, 2, 2)
    cached.set_num_frames(1)  # 1 pixel frame -> 1 latent frame of the 4x temporal VAE
    assert cached[(1, 0, 0)]["z_lr"].shape == (16, 1, 2, 2) and cached.temporal_factor == 4
