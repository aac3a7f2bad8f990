"""Video datasets: scanning, captions, skipping bad videos, determinism, the step sampler."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from surf_video.train.data import (
    ProceduralDataset,
    StepBatchSampler,
    VideoClipDataset,
    collate,
    resize_crop,
    scan_videos,
    synthetic_sample,
)
from surf_video.train.degrade import PixelDegradeConfig

from train_helpers import make_clip


def test_scan_folder_with_sidecar_captions_and_frame_folders(video_dir):
    frames = video_dir / "frames_clip"
    frames.mkdir()
    for i, fr in enumerate(make_clip(t=6)):
        Image.fromarray(fr).save(frames / f"{i:04d}.png")
    (video_dir / "frames_clip.txt").write_text("a frame folder")
    entries = dict(scan_videos(video_dir))
    assert len(entries) == 6
    assert entries[str(video_dir / "good1.mp4")] == "caption 1"
    assert entries[str(frames)] == "a frame folder"


def test_corrupt_and_short_videos_skipped_and_counted(video_dir, caplog):
    with caplog.at_level(logging.WARNING):
        ds = VideoClipDataset(scan_videos(video_dir), num_frames=4, size=(16, 16), seed=0)
    assert len(ds) == 3
    assert set(ds.skipped) == {str(video_dir / "corrupt.mp4"), str(video_dir / "short.mp4")}
    warnings = [r for r in caplog.records if "skipping video" in r.getMessage()]
    assert len(warnings) == 2  # one warning per bad video


def test_decode_failure_at_read_time_is_skipped(video_dir):
    ds = VideoClipDataset(scan_videos(video_dir), num_frames=4, size=(16, 16), seed=0, probe=False)
    item = ds[(0, 0, 0)]  # entries are sorted: corrupt.mp4 first -> replaced by the next good one
    assert item["hr"].shape == (3, 4, 16, 16)
    assert str(video_dir / "corrupt.mp4") in ds.skipped


def test_clips_deterministic_and_in_range(video_dir):
    kw = dict(num_frames=4, size=(16, 16), seed=1, degrade=PixelDegradeConfig(codec_prob=0.0))
    a = VideoClipDataset(scan_videos(video_dir), **kw)[(1, 0, 5)]
    b = VideoClipDataset(scan_videos(video_dir), **kw)[(1, 0, 5)]
    c = VideoClipDataset(scan_videos(video_dir), **kw)[(1, 1, 5)]  # other epoch: other clip / degradation
    torch.testing.assert_close(a["hr"], b["hr"], rtol=0, atol=0)
    torch.testing.assert_close(a["lr"], b["lr"], rtol=0, atol=0)
    assert not torch.equal(a["lr"], c["lr"])
    assert a["hr"].min() >= -1 and a["hr"].max() <= 1 and a["caption"] == "caption 1"


def test_manifest_csv_and_jsonl(video_dir, tmp_path):
    (tmp_path / "m.csv").write_text("video,caption\nvideos/good0.mp4,first\nvideos/good2.mp4,third\n")
    rows = [{"path": "videos/good1.mp4", "text": "second"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert scan_videos(tmp_path / "m.csv") == [(str(tmp_path / "videos/good0.mp4"), "first"),
                                               (str(tmp_path / "videos/good2.mp4"), "third")]
    assert scan_videos(tmp_path / "m.jsonl", "path", "text") == [(str(tmp_path / "videos/good1.mp4"), "second")]
    with pytest.raises(ValueError, match="video_column"):
        scan_videos(tmp_path / "m.jsonl")


def test_resize_crop():
    clip = make_clip(t=2, h=24, w=48)
    out = resize_crop(clip, (16, 16), np.random.default_rng(0))
    assert out.shape == (2, 16, 16, 3)
    np.testing.assert_array_equal(resize_crop(clip, (24, 48), None), clip)


def test_procedural_source_with_exact_pairs():
    def sample(index, rng, num_frames, size):
        hr = np.full((num_frames, *size, 3), index * 10, np.uint8)
        return hr, hr // 2, f"scene {index}"

    ds = ProceduralDataset(sample, num_samples=3, num_frames=2, size=(8, 12))
    it = ds[(2, 0, 0)]
    assert it["hr"].shape == (3, 2, 8, 12) and it["caption"] == "scene 2"
    torch.testing.assert_close(it["lr"], torch.full_like(it["lr"], 10 / 127.5 - 1))
    # no LR given -> degraded HR
    syn = ProceduralDataset(synthetic_sample, num_samples=4, num_frames=3, size=(16, 16))
    it = syn[(1, 0, 0)]
    assert not torch.equal(it["hr"], it["lr"])


def test_step_sampler_ranks_partition_the_global_batch():
    single = StepBatchSampler(10, 4, 0, 1, seed=3, start_step=0, num_steps=7)
    r0 = StepBatchSampler(10, 2, 0, 2, seed=3, start_step=0, num_steps=7)
    r1 = StepBatchSampler(10, 2, 1, 2, seed=3, start_step=0, num_steps=7)
    for s, (a, b, c) in enumerate(zip(single, r0, r1)):
        assert a == b + c
    # each epoch visits every item once
    keys = [k for batch in StepBatchSampler(10, 5, 0, 1, 3, 0, 2) for k in batch]
    assert sorted(k[0] for k in keys) == list(range(10)) and {k[1] for k in keys} == {0}
    # resuming at step 3 yields exactly the tail
    tail = list(StepBatchSampler(10, 4, 0, 1, 3, 3, 4))
    assert tail == list(single)[3:]


def test_collate():
    items = [{"hr": torch.zeros(3, 2, 4, 4), "caption": "a", "sample_id": 4},
             {"hr": torch.ones(3, 2, 4, 4), "caption": "b", "sample_id": 5}]
    b = collate(items)
    assert b["hr"].shape == (2, 3, 2, 4, 4) and b["caption"] == ["a", "b"] and b["sample_id"].tolist() == [4, 5]


def test_world_renderer_as_procedural_source():
    from surf_video.train.data import world_pair_sample

    ds = ProceduralDataset(world_pair_sample, num_samples=2, num_frames=5, size=(32, 32))
    a, b = ds[(1, 0, 0)], ds[(1, 3, 7)]
    assert a["hr"].shape == a["lr"].shape == (3, 5, 32, 32)
    torch.testing.assert_close(a["hr"], b["hr"], rtol=0, atol=0)  # a scene is fixed by its index
    assert not torch.equal(a["hr"], a["lr"]) and a["caption"]
