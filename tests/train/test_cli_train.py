"""`surf degrade`, `surf cache-latents` and `surf train` end to end on tiny inputs."""

import json

import numpy as np
import yaml

from surf_video.cli.main import main
from surf_video.io.video import read_video, write_video
from surf_video.train.checkpoint import latest_checkpoint

from train_helpers import make_clip, tiny_recipe


def test_degrade_cli_is_seeded(tmp_path):
    src = write_video(tmp_path / "in.mp4", make_clip(t=5, h=32, w=32), fps=8)
    cfg = tmp_path / "degrade.yaml"
    cfg.write_text(yaml.safe_dump({"pixel": {"codec_prob": 1.0, "codec_crf": [35, 35]}}))
    for name in ("a", "b"):
        assert main(["degrade", str(src), "--out", str(tmp_path / f"{name}.mp4"), "--seed", "3", "--config", str(cfg)]) == 0
    assert main(["degrade", str(src), "--out", str(tmp_path / "c.mp4"), "--seed", "4", "--config", str(cfg)]) == 0
    a, b, c = (read_video(tmp_path / f"{n}.mp4") for n in "abc")
    clean = read_video(src)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a.astype(int) - clean.astype(int)).mean() > 2
    assert main(["degrade", str(src), "--out", str(tmp_path / "s.gif"), "--side-by-side", "--vae", "identity"]) == 0
    assert read_video(tmp_path / "s.gif").shape == (5, 32, 64, 3)
    assert main(["degrade", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "x.mp4")]) == 2


def test_cache_latents_cli_then_train_on_cache(tmp_path, video_dir, capsys):
    out = tmp_path / "cache"
    assert main(["cache-latents", str(video_dir), "--vae", "identity", "--out", str(out), "--frames", "4",
                 "--size", "8", "8", "--variants", "2", "--shard-size", "4"]) == 0
    assert "2 skipped" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert len(index["items"]) == 6 and index["shape"] == [3, 4, 8, 8]
    # rerunning is a no-op (everything is cached already)
    assert main(["cache-latents", str(video_dir), "--vae", "identity", "--out", str(out), "--frames", "4",
                 "--size", "8", "8", "--variants", "2"]) == 0
    assert len(json.loads((out / "index.json").read_text())["items"]) == 6

    recipe = tiny_recipe(tmp_path / "run", data={"type": "latents", "path": str(out)},
                         phases=[{"steps": 2, "num_frames": 2}, {"steps": 2}])
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(tmp_path / "r.yaml"), "--max-steps", "3"]) == 0
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step-00000003"
    assert not (tmp_path / "run" / "final").exists()
    assert main(["train", str(tmp_path / "r.yaml"), "--resume"]) == 0
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step-00000004"
    assert (tmp_path / "run" / "final" / "diffusion_pytorch_model.safetensors").is_file()


def test_train_cli_rejects_bad_recipe(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**tiny_recipe(tmp_path), "optim": {"lr": -1}}))
    assert main(["train", str(tmp_path / "bad.yaml")]) == 2
    assert "optim.lr" in capsys.readouterr().err
