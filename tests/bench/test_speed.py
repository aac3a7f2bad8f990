"""Speed benchmark on the CPU: analytic FLOPs against torch's FlopCounterMode, and the harness end to end."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from surf_video.bench import flops as F
from surf_video.bench.speed import WAN_TINY


def _counted(fn) -> int:
    # The math SDPA backend decomposes attention into matmuls, which FlopCounterMode counts
    # (the fused CPU kernel is not counted at all).
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


WAN_SMALL = dict(patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=16, in_channels=16, out_channels=16,
                 text_dim=32, freq_dim=32, ffn_dim=96, num_layers=2, cross_attn_norm=True,
                 qk_norm="rms_norm_across_heads", rope_max_seq_len=64)


def test_wan_flops_match_flop_counter():
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    model = WanTransformer3DModel(**WAN_SMALL).eval()
    x, t, text = torch.randn(2, 16, 5, 16, 24), torch.tensor([500.0, 20.0]), torch.randn(2, 12, 32)
    counted = _counted(lambda: model(x, t, text))
    ours = F.wan_forward_flops(WAN_SMALL, F.PatchGrid(5, 8, 12), text_len=12, batch=2)["total"]
    assert ours == pytest.approx(counted, rel=0.02)


@pytest.mark.parametrize("window,frames", [(2, 7), (4, 9), (None, 5), (3, 9)])
def test_refiner_flops_match_flop_counter(window, frames):
    from surf_video.models.refiner import RefinerTransformer3DModel

    torch.manual_seed(0)
    cfg = dict(WAN_SMALL, temporal_window_size=window)
    model = RefinerTransformer3DModel(**cfg).eval()
    x, t, text = torch.randn(1, 16, frames, 8, 16), torch.tensor([700.0]), torch.randn(1, 10, 32)
    counted = _counted(lambda: model(x, t, text))
    ours = F.refiner_forward_flops(cfg, F.PatchGrid(frames, 4, 8), text_len=10)["total"]
    assert ours == pytest.approx(counted, rel=0.02)
    if window is not None and window < frames:  # and the windows really cut the attention work
        full = F.refiner_forward_flops(dict(cfg, temporal_window_size=None), F.PatchGrid(frames, 4, 8), 10)
        assert ours < full["total"]


def test_hunyuan_flops_match_flop_counter():
    from diffusers import HunyuanVideoTransformer3DModel

    cfg = dict(in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16, num_layers=1,
               num_single_layers=2, num_refiner_layers=1, patch_size=2, patch_size_t=1, guidance_embeds=True,
               text_embed_dim=24, pooled_projection_dim=8, rope_axes_dim=(4, 6, 6), mlp_ratio=4.0)
    torch.manual_seed(0)
    model = HunyuanVideoTransformer3DModel(**cfg).eval()
    x, text, pooled = torch.randn(1, 16, 5, 16, 16), torch.randn(1, 10, 24), torch.randn(1, 8)
    mask = torch.ones(1, 10)
    mask[:, 7:] = 0
    counted = _counted(lambda: model(x, torch.tensor([500.0]), text, mask, pooled, guidance=torch.tensor([6000.0])))
    ours = F.hunyuan_forward_flops(cfg, F.PatchGrid(5, 8, 8), text_len=10)["total"]
    assert ours == pytest.approx(counted, rel=0.02)


def test_full_size_counts_match_published_shapes():
    # Wan 2.1 14B, 720p, 81 frames: 21x45x80 tokens; NOTES.md measured 12.77 s at 511 TFLOP/s per forward,
    # i.e. ~6.5 PFLOP, which this count must reproduce.
    from surf_video.bench.speed import WAN14B

    grid = F.patch_grid(81, 720, 1280)
    assert grid.tokens == 75_600
    assert F.wan_forward_flops(WAN14B, grid)["total"] / 1e15 == pytest.approx(6.52, rel=0.01)
    assert F.patch_grid(81, 1088, 1920).tokens == 171_360
    with pytest.raises(ValueError, match="divide"):
        F.patch_grid(81, 1080, 1920)


def test_attention_pairs_of_shifted_windows():
    grid = F.PatchGrid(21, 1, 1)
    assert F.attention_pairs(grid, None, False) == 21**2
    assert F.attention_pairs(grid, 7, False) == 3 * 49
    # shifted by 3: head of 3, two full windows, tail of 4 -> split boundary attends 4 and 3 apart
    assert F.attention_pairs(grid, 7, True) == 2 * 49 + 16 + 9
    assert F.attention_pairs(grid, 7, True, boundary_mode="mask") == 2 * 49 + 49


def _run_cli(tmp_path, *args):
    from surf_video.cli.main import main

    return main(["bench", "speed", "--device", "cpu", "--dtype", "float32", "--no-vae-decode", "--timed-steps", "1",
                 "--target", "tiny", *args, "--out", str(tmp_path / "r.json")])


def test_harness_end_to_end_on_tiny_wan(tmp_path):
    assert _run_cli(tmp_path, "--model", "wan-tiny", "--target-size", "96x128", "--base-size", "64x96",
                    "--preview-size", "32x48", "--num-frames", "5") == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["model"] == "wan-tiny" and res["env"]["torch"] == torch.__version__
    run = res["runs"][0]
    base, surf = run["baseline"], run["surf"]
    assert (base["forwards"], surf["stage1"]["forwards"], surf["stage2"]["forwards"], surf["refine"]["forwards"]) == (
        100, 20, 60, 10)  # CFG doubles the base model's forwards; the refiner runs once a step
    assert base["latent_shape"] == [1, 16, 2, 12, 16] and surf["stage2"]["latent_shape"] == [1, 16, 2, 4, 6]
    assert base["extrapolated"] and "extrapolated from" in base["note"]
    assert run["speedup"] == pytest.approx(base["seconds"] / run["surf_seconds"])
    assert run["surf_seconds"] == pytest.approx(sum(s["seconds"] for s in surf.values()))
    assert base["flops_per_forward"] == F.wan_forward_flops(WAN_TINY, F.PatchGrid(2, 6, 8), 512)["total"]
    assert surf["stage2"]["flops_per_forward"] < surf["stage1"]["flops_per_forward"] < base["flops_per_forward"]
    for s in (base, *surf.values()):
        assert s["sec_per_forward"] > 0 and s["timed_forwards"] >= 1


def test_harness_refiner_windows_and_report(tmp_path):
    assert _run_cli(tmp_path, "--model", "refiner-tiny", "--preview-size", "32x48", "--num-frames", "9",
                    "--windows", "2,full") == 0
    res = json.loads((tmp_path / "r.json").read_text())
    rows = res["runs"][0]["windows"]
    assert [r["temporal_window_size"] for r in rows] == [2, None]
    assert rows[1]["speedup_over_full_attention"] == pytest.approx(1.0)
    assert rows[0]["flops_per_forward"] < rows[1]["flops_per_forward"]
    # the README section is created, and rewritten in place without touching other sections
    from surf_video.bench.speed_report import update_readme, write_json

    results = tmp_path / "results"
    write_json(res, results / "speed_refiner-tiny.json")
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n## Signature\nkeep me\n")
    update_readme(readme, results)
    update_readme(readme, results)
    text = readme.read_text()
    assert text.count("## Speed") == 1 and "keep me" in text and "results/speed_refiner-tiny.json" in text


def test_cli_rejects_bad_arguments(tmp_path):
    from surf_video.cli.main import main

    assert main(["bench", "speed", "--target", "4k", "--device", "cpu"]) == 2
    assert main(["bench", "speed", "--switch-step", "60", "--device", "cpu"]) == 2


def test_batched_cfg_row_runs_one_forward_of_two_per_step(tmp_path):
    assert _run_cli(tmp_path, "--model", "wan-tiny", "--target-size", "64x96", "--base-size", "64x96",
                    "--preview-size", "32x48", "--num-frames", "5", "--batch-cfg") == 0
    res = json.loads((tmp_path / "r.json").read_text())
    run = res["runs"][0]
    assert res["config"]["batch_cfg"] is True
    assert run["baseline"]["forwards"] == 50 and run["baseline"]["latent_shape"][0] == 2
    assert run["surf"]["stage2"]["forwards"] == 30 and run["surf"]["refine"]["latent_shape"][0] == 1
    one = F.wan_forward_flops(WAN_TINY, F.PatchGrid(2, 4, 6), 512)["total"]
    assert run["baseline"]["flops_per_forward"] == 2 * one  # a batch of 2 costs two samples' FLOPs


def test_quantize_row_fails_with_a_clear_error_off_gpu(tmp_path, capsys):
    # fp8 needs torchao and a CUDA GPU of compute capability >= 8.9; elsewhere the row stops with the reason
    assert _run_cli(tmp_path, "--model", "wan-tiny", "--target-size", "64x96", "--base-size", "64x96",
                    "--preview-size", "32x48", "--num-frames", "5", "--quantize", "fp8") == 2
    err = capsys.readouterr().err
    assert "quantize='fp8'" in err and ("torchao" in err or "compute capability" in err)
    assert not (tmp_path / "r.json").exists()


def test_gpu_rows_script_only_uses_valid_arguments():
    # benchmarks/gpu_rows.sh is run on a borrowed GPU with little time: every row must parse here first
    import shlex
    from pathlib import Path

    from surf_video.cli.main import build_parser
    from surf_video.pipelines.accel import available_backends

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_rows.sh"
    rows = [shlex.split(line.split("#")[0])[1:] for line in script.read_text().splitlines()
            if line.strip().startswith("row --")]
    assert len(rows) >= 5
    for row in rows:
        args = build_parser().parse_args(["bench", "speed", "--timed-steps", "1", "--no-vae-decode", "--out", "x", *row])
        assert args.model in ("wan14b", "wan1.3b") and args.target
        if args.attention_backend:
            assert args.attention_backend in available_backends()


def test_cache_row_runs_every_surf_step_and_times_the_eager_baseline(tmp_path):
    # --cache: SURF's base stages run every step (a cache's skips depend on the step) after a warm-up call,
    # so nothing is extrapolated there; --eager-baseline times the unaccelerated baseline in the same run
    assert _run_cli(tmp_path, "--model", "wan-tiny", "--target-size", "64x96", "--base-size", "64x96",
                    "--preview-size", "32x48", "--num-frames", "5", "--steps", "6", "--surf-steps", "8",
                    "--switch-step", "3", "--refine-steps", "2", "--cache", "taylorseer:2:1",
                    "--eager-baseline") == 0
    run = json.loads((tmp_path / "r.json").read_text())["runs"][0]
    s1, s2 = run["surf"]["stage1"], run["surf"]["stage2"]
    assert (s1["forwards"], s2["forwards"]) == (6, 10) and not s1["extrapolated"] and not s2["extrapolated"]
    assert len(s1["forward_times"]) == 6 and len(s2["forward_times"]) == 10
    assert s1["seconds"] == pytest.approx(run["pipeline_timings"]["surf_call"]["stage0"])
    assert run["cache"] == "taylorseer:2:1" and run["baseline"]["extrapolated"]
    eager = run["baseline_eager"]
    assert eager["forwards"] == 12 and run["speedup_vs_eager"] == pytest.approx(eager["seconds"] / run["surf_seconds"])


@pytest.mark.parametrize("spec, match", [("compile", "--cache: one of"), ("fora:0", "INTERVAL >= 1"),
                                         ("lru", "unknown 'lru'")])
def test_cache_spec_errors_name_the_option(tmp_path, capsys, spec, match):
    assert _run_cli(tmp_path, "--model", "wan-tiny", "--cache", spec) != 0
    err = capsys.readouterr().err
    assert "--cache:" in err and match in err


def test_no_accel_baseline_compares_with_the_eager_one(tmp_path, capsys):
    args = ("--model", "wan-tiny", "--target-size", "64x96", "--base-size", "64x96", "--preview-size", "32x48",
            "--num-frames", "5", "--steps", "6", "--surf-steps", "8", "--switch-step", "3", "--refine-steps", "2")
    assert _run_cli(tmp_path, *args, "--cache", "taylorseer:2:1", "--eager-baseline", "--no-accel-baseline") == 0
    run = json.loads((tmp_path / "r.json").read_text())["runs"][0]
    assert run["baseline"]["accelerations"] == "none (eager)"
    assert run["speedup"] == pytest.approx(run["speedup_vs_eager"])
    assert _run_cli(tmp_path, *args, "--no-accel-baseline") != 0
    assert "--no-accel-baseline needs --eager-baseline" in capsys.readouterr().err
