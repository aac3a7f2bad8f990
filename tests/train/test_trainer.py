"""The trainer overfits, resumes bit-exactly, ignores partial checkpoints and stops on NaN."""

import csv
import shutil

import pytest
import torch
from safetensors.torch import load_file

from surf_video.train.checkpoint import COMPLETE, latest_checkpoint
from surf_video.train.config import load_config
from surf_video.train.trainer import Trainer, TrainingDiverged, sample_timesteps
from surf_video.train.config import TimestepConfig

from train_helpers import tiny_recipe


def _losses(out_dir):
    with open(out_dir / "logs" / "train.csv", newline="") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def test_overfits_tiny_synthetic_set(tmp_path):
    cfg = load_config(tiny_recipe(tmp_path / "run", phases=[{"steps": 60}], checkpoint={"every": 60},
                                  logging={"every": 1, "tensorboard": True, "plot_every": 0}))
    result = Trainer(cfg).train()
    losses = _losses(tmp_path / "run")
    assert len(losses) == 60 and result.step == 60
    first, last = sum(losses[:3]) / 3, sum(losses[-5:]) / 5
    assert first / last >= 5, (first, last)
    assert (tmp_path / "run" / "loss.png").is_file()
    assert list((tmp_path / "run" / "logs" / "tensorboard").glob("events.*"))


def _state(trainer):
    model = {k: v.detach().clone() for k, v in trainer.acc.unwrap_model(trainer.model).state_dict().items()}
    return model, trainer.optimizer.state_dict(), trainer.scheduler.state_dict(), trainer.ema.state_dict()


def _assert_same_optimizer(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        for name, val in a["state"][k].items():
            torch.testing.assert_close(val, b["state"][k][name], rtol=0, atol=0)


def test_resume_is_exact_after_a_crash(tmp_path):
    phases = [{"steps": 3, "num_frames": 2}, {"steps": 3, "num_frames": 3}]
    straight = Trainer(load_config(tiny_recipe(tmp_path / "a", phases=phases)))
    straight.train()

    class Killed(Exception):
        pass

    def kill_at_5(step):
        if step == 5:  # after the step-4 checkpoint: step 5 is lost, as with a SIGKILL
            raise Killed

    with pytest.raises(Killed):
        Trainer(load_config(tiny_recipe(tmp_path / "b", phases=phases)), on_step_end=kill_at_5).train()
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == "step-00000004"
    resumed = Trainer(load_config(tiny_recipe(tmp_path / "b", phases=phases)))
    result = resumed.train(resume=True)
    assert result.step == 6
    ma, oa, sa, ea = _state(straight)
    mb, ob, sb, eb = _state(resumed)
    for k in ma:
        torch.testing.assert_close(ma[k], mb[k], rtol=0, atol=0)
    _assert_same_optimizer(oa, ob)
    assert sa == sb
    assert ea["num_updates"] == eb["num_updates"] == 6
    for k in ea["shadow"]:
        torch.testing.assert_close(ea["shadow"][k], eb["shadow"][k], rtol=0, atol=0)
    # the log holds each step once (the lost step 5 was dropped on resume)
    with open(tmp_path / "b" / "logs" / "train.csv", newline="") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4, 5, 6]
    # the saved checkpoints agree too
    wa = load_file(str(tmp_path / "a" / "checkpoints" / "step-00000006" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "checkpoints" / "step-00000006" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)


def test_interrupted_checkpoint_write_is_ignored(tmp_path, monkeypatch):
    cfg = load_config(tiny_recipe(tmp_path / "r", phases=[{"steps": 4}]))
    Trainer(cfg).train(max_steps=2)
    ck = tmp_path / "r" / "checkpoints"
    # a later checkpoint whose marker never got written, and a leftover temp folder
    shutil.copytree(ck / "step-00000002", ck / "step-00000003")
    (ck / "step-00000003" / COMPLETE).unlink()
    shutil.copytree(ck / "step-00000002", ck / ".tmp-step-00000004")
    assert latest_checkpoint(ck).name == "step-00000002"

    # a crash inside the next checkpoint write (after accelerate saved, before the marker)
    import surf_video.train.trainer as tr

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(tr, "finalize_checkpoint", crash)
    trainer = Trainer(cfg)
    with pytest.raises(OSError):
        trainer.train(resume=True)
    assert trainer.step == 4 or trainer.step == 3  # it trained past step 2 before the crash
    monkeypatch.undo()
    resumed = Trainer(cfg)
    resumed.load_checkpoint(latest_checkpoint(ck))
    assert resumed.step == 2


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = load_config(tiny_recipe(tmp_path / "n", phases=[{"steps": 6}]))

    def poison(step):
        if step == 2:
            with torch.no_grad():
                next(trainer.acc.unwrap_model(trainer.model).parameters()).fill_(float("nan"))

    trainer = Trainer(cfg, on_step_end=poison)
    with pytest.raises(TrainingDiverged, match="non-finite loss .* step 3.*step-00000002"):
        trainer.train()
    assert latest_checkpoint(tmp_path / "n" / "checkpoints").name == "step-00000002"
    weights = load_file(str(tmp_path / "n" / "checkpoints" / "step-00000002" / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_validation_videos_and_wan_model(tmp_path):
    wan = {"type": "wan", "config": {"patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 12,
                                     "in_channels": 3, "out_channels": 3, "text_dim": 16, "freq_dim": 32,
                                     "ffn_dim": 32, "num_layers": 2, "rope_max_seq_len": 32}}
    cfg = load_config(tiny_recipe(tmp_path / "v", model=wan, phases=[{"steps": 2}],
                                  validation={"every": 2, "num_samples": 2, "num_steps": 2}))
    trainer = Trainer(cfg)
    trainer.train()
    vids = sorted((tmp_path / "v" / "samples").glob("*.mp4"))
    assert [v.name for v in vids] == ["step-00000002_0.mp4", "step-00000002_1.mp4"]
    from surf_video.io.video import read_video

    assert read_video(vids[0]).shape == (3, 8, 24, 3)  # lr | refined | hr side by side
    exported = trainer.export()
    assert (exported / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "v" / "final-ema" / "config.json").is_file()


def test_timestep_densities():
    g = torch.Generator().manual_seed(0)
    u = sample_timesteps(4000, TimestepConfig(), g)
    assert 0 <= u.min() and u.max() <= 1 and abs(u.mean() - 0.5) < 0.03
    ln = sample_timesteps(4000, TimestepConfig(density="logit_normal"), g)
    assert abs(ln.mean() - 0.5) < 0.03 and ln.std() < u.std()
    sh = sample_timesteps(4000, TimestepConfig(shift=3.0), g)
    assert sh.mean() > 0.6


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        load_config(tiny_recipe(tmp_path, optim={"learning_rate": 1e-4}))
    with pytest.raises(ValueError, match="data.type"):
        load_config(tiny_recipe(tmp_path, data={"type": "webdataset"}))
    with pytest.raises(ValueError, match="data.path"):
        load_config(tiny_recipe(tmp_path, data={"type": "videos"}))
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_shipped_recipes_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs" / "refiner"
    tiny = load_config(root / "tiny.yaml")
    big = load_config(root / "refiner-1b.yaml")
    assert big.optim.lr == 5e-5 and [p.num_frames for p in big.phases] == [21, 81]
    assert [p.steps for p in big.phases] == [1000, 4000]
    assert big.degrade.pixel.first.kernel_size == [7, 21]  # loaded from degrade.yaml next to the recipe
    assert tiny.data.type == "synthetic" and tiny.total_steps == 100


def test_bf16_autocast_and_gradient_checkpointing(tmp_path):
    model = {"type": "refiner", "name": "refiner-tiny", "config": {"in_channels": 3, "out_channels": 3},
             "gradient_checkpointing": True}
    cfg = load_config(tiny_recipe(tmp_path / "bf", model=model, mixed_precision="bf16", phases=[{"steps": 2}]))
    trainer = Trainer(cfg)
    assert trainer.acc.mixed_precision == "bf16"
    assert trainer.acc.unwrap_model(trainer.model).gradient_checkpointing
    result = trainer.train()
    assert result.step == 2 and torch.isfinite(torch.tensor(result.last_loss))
    # master weights stay fp32 under autocast
    assert all(p.dtype == torch.float32 for p in trainer.acc.unwrap_model(trainer.model).parameters())


def test_init_from_wan_copies_weights(tmp_path):
    from diffusers import WanTransformer3DModel

    from surf_video.train.trainer import build_model
    from surf_video.train.config import ModelConfig

    torch.manual_seed(0)
    wan = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=3,
                                out_channels=3, text_dim=16, freq_dim=32, ffn_dim=32, num_layers=2)
    wan.save_pretrained(tmp_path / "pipe" / "transformer")
    refiner = build_model(ModelConfig(type="refiner", init_from_wan=str(tmp_path / "pipe"), temporal_window_size=2))
    assert type(refiner).__name__ == "RefinerTransformer3DModel" and refiner.config.temporal_window_size == 2
    ref_state = refiner.state_dict()
    for k, v in wan.state_dict().items():
        torch.testing.assert_close(ref_state[k], v, rtol=0, atol=0)
    cfg = load_config(tiny_recipe(tmp_path / "w", model={"type": "refiner", "init_from_wan": str(tmp_path / "pipe"),
                                                         "temporal_window_size": 2}, phases=[{"steps": 1}]))
    assert Trainer(cfg).train().step == 1


def test_procedural_source_and_text_callables(tmp_path):
    import numpy as np

    seen = []

    def sample(index, rng):
        hr = np.full((3, 8, 8, 3), 40 * index, np.uint8)
        return hr, np.clip(hr.astype(int) + 20, 0, 255).astype(np.uint8), f"scene {index}"

    def text(captions, device=None):
        seen.extend(captions)
        return torch.ones(len(captions), 2, 16, device=device)

    cfg = load_config(tiny_recipe(tmp_path / "p", data={"type": "procedural", "source": "unused:unused",
                                                        "num_samples": 3, "num_frames": 3, "size": [8, 8]},
                                  phases=[{"steps": 2}]))
    assert Trainer(cfg, sample_fn=sample, text_encoder=text).train().step == 2
    assert len(seen) == 8 and set(seen) <= {"scene 0", "scene 1", "scene 2"}
