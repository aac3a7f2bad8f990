"""Context parallelism on the CPU: two gloo processes (torchrun) against one process.

gloo runs the collectives diffusers' Ulysses and our windowed Ulysses use (``all_to_all_single``,
``all_gather``), so Ulysses is tested end to end here. Ring attention cannot run on the CPU: it needs the
attention's log-sum-exp, which only CUDA backends return (PyTorch's CPU SDPA gives none), so for ring only
the error paths are tested. One torchrun job runs every two-process check and writes what it saw (per rank)
to JSON; the tests below read it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from surf_video.models.ulysses import seq_to_heads
from surf_video.pipelines.parallel import enable_context_parallel, init_distributed, is_main_process

ROOT = Path(__file__).resolve().parents[2]

KW = dict(num_frames=13, num_inference_steps=4, switch_step=2, guidance_scale=3.0, height=64, width=64,
          output_type="latent", refine_steps=3)  # tokens: base 4x2x2, preview 4x1x1, refine 4x4x4; window 2 of 4

WORKER = r"""
import json, sys, torch
from unittest import mock
torch.set_num_threads(1)
from diffusers import ContextParallelConfig
from surf_video.api import load_pipeline
from surf_video.cli.main import main as cli
from surf_video.models.refiner import RefinerTransformer3DModel
from surf_video.pipelines import parallel as P
import surf_video.io.video as iov

out_dir, kw = sys.argv[1], json.loads(sys.argv[2])
info = P.init_distributed("cpu")
res = {"rank": info.rank, "world": info.world_size}

def err(fn):
    try:
        fn()
    except Exception as e:
        return [type(e).__name__, str(e)]
    return None

def diff(a, b):
    return [(a - b).abs().max().item(), b.abs().max().item()]

# 1. SURF on tiny-wan with the tiny refiner: one process (before enabling) vs two (Ulysses).
surf = load_pipeline("tiny-wan", device="cpu")
ref = surf("a red circle moving left", generator=torch.Generator().manual_seed(0), **kw)
res["enabled"] = P.enable_context_parallel(surf, ulysses_degree=info.world_size)
out = surf("a red circle moving left", generator=torch.Generator().manual_seed(0), **kw)
res["latents"], res["preview"] = diff(out.latents, ref.latents), diff(out.preview_latents, ref.preview_latents)
res["evals"] = [ref.num_evaluations, out.num_evaluations]
res["stage_error"] = err(lambda: surf("a red circle", **{**kw, "num_frames": 9}))
res["refine_error"] = err(lambda: surf.refine(torch.randn(1, 16, 3, 2, 2), "a red circle", 48, 48,
                                              output_type="latent", refine_steps=1))
res["again_error"] = err(lambda: P.enable_model_context_parallel(surf.refiner, ulysses_degree=2))

# 2. Refiner only: windowed Ulysses (regular, shifted with a boundary window, mask mode, full attention).
x, t, e = torch.randn(2, 16, 7, 8, 12), torch.tensor([500.0, 300.0]), torch.randn(2, 5, 16)
res["refiner"] = {}
for name, win, mode in (("w3_split", 3, "split"), ("w3_mask", 3, "mask"), ("w2", 2, "split"), ("full", None, "split")):
    torch.manual_seed(0)
    m = RefinerTransformer3DModel.from_config_name("refiner-tiny", temporal_window_size=win, num_layers=3,
                                                   num_attention_heads=4).eval()
    m.set_boundary_mode(mode)
    with torch.no_grad():
        r = m(x, t, e, return_dict=False)[0]
        P.enable_model_context_parallel(m, ulysses_degree=info.world_size)
        o = m(x, t, e, return_dict=False)[0]
        P.disable_context_parallel(m)
        o2 = m(x, t, e, return_dict=False)[0]
    res["refiner"][name] = diff(o, r) + [(o2 - r).abs().max().item()]
# per-token timesteps [B, N] are split like the tokens
torch.manual_seed(0)
m = RefinerTransformer3DModel.from_config_name("refiner-tiny", temporal_window_size=3).eval()
tt = torch.rand(2, 7 * 4 * 6) * 1000
with torch.no_grad():
    r = m(x, tt, e, return_dict=False)[0]
    P.enable_model_context_parallel(m, ulysses_degree=info.world_size)
    res["refiner"]["per_token_t"] = diff(m(x, tt, e, return_dict=False)[0], r)
    res["odd_tokens_error"] = err(lambda: m(torch.randn(1, 16, 3, 2, 2), t[:1], e[:1]))

# 3. Errors.
res["heads_error"] = err(lambda: P.enable_model_context_parallel(
    RefinerTransformer3DModel.from_config_name("refiner-tiny", num_attention_heads=3, attention_head_dim=8),
    ulysses_degree=info.world_size))
ring_ref = RefinerTransformer3DModel.from_config_name("refiner-tiny", temporal_window_size=2).eval()
with mock.patch("torch.accelerator.device_count", return_value=1):
    ring_ref.enable_parallelism(config=ContextParallelConfig(ring_degree=info.world_size))
res["refiner_ring_error"] = err(lambda: ring_ref(torch.randn(1, 16, 4, 4, 4), t[:1], e[:1]))
fresh = load_pipeline("tiny-wan", device="cpu")
res["ring_cpu_error"] = err(lambda: P.enable_context_parallel(fresh, ring_degree=info.world_size))
res["ring_cpu_untouched"] = P.context_parallel_degree(fresh.base.transformer)
res["degree_error"] = err(lambda: P.enable_context_parallel(fresh, ulysses_degree=info.world_size + 2))

# 4. The CLI under torchrun: only rank 0 writes the video.
writes = []
orig = iov.write_video
iov.write_video = lambda *a, **k: (writes.append(str(a[0])), orig(*a, **k))[1]
res["cli_rc"] = cli(["generate", "a red circle moving left", "--base", "tiny-wan", "--out", out_dir + "/cp.mp4",
                     "--steps", "4", "--frames", "13", "--switch-step", "2", "--parallel", "ulysses"])
res["cli_writes"] = writes
res["bench_rc"] = cli(["bench", "speed", "--device", "cpu", "--dtype", "float32", "--no-vae-decode", "--timed-steps", "1",
                       "--target", "tiny", "--model", "wan-tiny", "--target-size", "96x128", "--base-size", "64x96",
                       "--preview-size", "32x48", "--num-frames", "5", "--parallel", "ulysses",
                       "--out", out_dir + "/speed.json"])
with open(f"{out_dir}/rank{info.rank}.json", "w") as f:
    json.dump(res, f)
"""


@pytest.fixture(scope="module")
def cp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cp")
    script = out / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29561", str(script), str(out), json.dumps(KW)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_surf_ulysses_two_processes_equal_one(cp_run):
    _, ranks = cp_run
    for r in ranks:
        assert r["world"] == 2
        assert r["enabled"]["mode"] == "ulysses" and set(r["enabled"]["backends"]) == {"transformer", "refiner"}
        for key in ("latents", "preview"):
            max_diff, scale = r[key]
            assert scale > 0.1 and max_diff <= 1e-5 * max(scale, 1.0), (key, r[key])
        assert r["evals"][0] == r["evals"][1]


def test_refiner_windowed_ulysses_equals_single_process(cp_run):
    _, ranks = cp_run
    for r in ranks:
        for name, vals in r["refiner"].items():
            assert vals[1] > 0.1 and vals[0] <= 1e-5 * max(vals[1], 1.0), (name, vals)
            if len(vals) > 2:  # disable_context_parallel gives back the single-process model
                assert vals[2] == 0.0, (name, vals)


def test_stage_sizes_the_degree_does_not_divide_are_named(cp_run):
    _, ranks = cp_run
    r = ranks[0]
    assert r["stage_error"][0] == "ValueError"
    assert "stage 1 (preview, 16x16, 9 frames)" in r["stage_error"][1] and "3x1x1 = 3 tokens" in r["stage_error"][1]
    assert r["refine_error"][0] == "ValueError" and "refine (48x48" in r["refine_error"][1]
    assert r["odd_tokens_error"][0] == "ValueError" and "not divisible by the degree 2" in r["odd_tokens_error"][1]


def test_parallel_error_messages(cp_run):
    _, ranks = cp_run
    r = ranks[1]
    assert r["heads_error"][0] == "ValueError" and "3 attention heads" in r["heads_error"][1]
    assert r["refiner_ring_error"][0] == "NotImplementedError" and "ring_degree=2" in r["refiner_ring_error"][1]
    assert "ulysses_degree" in r["refiner_ring_error"][1]
    assert r["ring_cpu_error"][0] == "NotImplementedError" and "CUDA-only" in r["ring_cpu_error"][1]
    assert r["ring_cpu_untouched"] == 1  # the failed call changed nothing
    assert r["degree_error"][0] == "ValueError" and "number of processes (2)" in r["degree_error"][1]
    assert r["again_error"][0] == "ValueError" and "already parallel" in r["again_error"][1]


def test_cli_parallel_generate_writes_once_and_matches_one_process(cp_run, tmp_path):
    out, ranks = cp_run
    assert [r["cli_rc"] for r in ranks] == [0, 0]
    assert len(ranks[0]["cli_writes"]) == 1 and ranks[1]["cli_writes"] == []
    from surf_video.cli.main import main
    from surf_video.io.video import read_video

    single = tmp_path / "one.mp4"
    assert main(["generate", "a red circle moving left", "--base", "tiny-wan", "--out", str(single), "--steps", "4",
                 "--frames", "13", "--switch-step", "2"]) == 0
    a, b = read_video(out / "cp.mp4"), read_video(single)
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_bench_speed_parallel(cp_run):
    out, ranks = cp_run
    assert [r["bench_rc"] for r in ranks] == [0, 0]
    res = json.loads((out / "speed.json").read_text())
    assert res["parallel"]["mode"] == "ulysses" and res["parallel"]["degree"] == 2
    assert set(res["parallel"]["backends"]) == {"transformer", "refiner"}
    assert res["runs"][0]["surf"]["refine"]["forwards"] == 10


# ---- single-process checks (no torchrun) ---------------------------------------------------------------
def test_errors_without_torchrun(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        init_distributed("cpu")
    with pytest.raises(ValueError, match="exactly one of ulysses_degree or ring_degree"):
        enable_context_parallel(object(), ulysses_degree=2, ring_degree=2)
    with pytest.raises(RuntimeError, match="not initialized"):
        enable_context_parallel(object(), ulysses_degree=2)
    assert is_main_process()
    from surf_video.cli.main import main

    rc = main(["generate", "x", "--base", "tiny-wan", "--out", str(tmp_path / "x.mp4"), "--parallel", "ulysses"])
    assert rc == 2 and "--parallel: launch under torchrun" in capsys.readouterr().err


def test_ulysses_heads_check_before_any_communication():
    with pytest.raises(ValueError, match="3 attention heads are not divisible by ulysses_degree=2"):
        seq_to_heads(torch.zeros(1, 4, 3, 8), group=None, degree=2)
    x = torch.randn(2, 5, 4, 8)
    assert torch.equal(seq_to_heads(x, None, 1), x)


def test_cp_speed_script_tiny(tmp_path):
    """The GPU benchmark script's logic on 2 CPU processes (tiny models)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"), "OUT": str(tmp_path)}
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29562",
           str(ROOT / "benchmarks" / "multigpu" / "cp_speed.py"), "--tiny"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads((tmp_path / "cp_speed.json").read_text())
    assert res["world_size"] == 2 and set(res["stages"]) == {"base_720p", "base_480p", "base_240p", "refiner_720p"}
    for st in res["stages"].values():
        assert st["ulysses2"]["error_vs_1gpu"]["rel_l2"] < 1e-5
    assert res["recipe"]["1gpu"]["complete"] and res["recipe"]["ulysses2"]["complete"]
    assert "ring2" not in res["recipe"] and res["ring"].startswith("skipped")
