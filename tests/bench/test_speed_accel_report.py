"""The acceleration table: both ratios from the eager row of the same folder, and clear errors."""

import json

import pytest

from surf_video.bench.speed_accel_report import accel_label, accel_markdown, accel_rows, plot_accel


def _result(path, target, base_s, surf_s, **config):
    stage = lambda s: {"seconds": s}  # noqa: E731
    run = {"target": target, "baseline": {"seconds": base_s, "tflops_per_s": 500.0}, "surf_seconds": surf_s,
           "surf": {"stage1": stage(surf_s / 2), "stage2": stage(surf_s / 4), "refine": stage(surf_s / 4)},
           "speedup": base_s / surf_s}  # fmt: skip
    cfg = {"compile": False, "batch_cfg": False, "attention_backend": None, "quantize": None} | config
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": "wan14b", "config": cfg, "env": {"gpu": "GPU"}, "runs": [run]}))


def test_rows_carry_like_for_like_and_eager_ratios(tmp_path):
    _result(tmp_path / "gpu0" / "speed_wan14b.json", "720p", 1000.0, 100.0)
    _result(tmp_path / "gpu1" / "speed_wan14b_compile.json", "720p", 800.0, 50.0, compile=True)
    rows = accel_rows(tmp_path)
    assert [r["label"] for r in rows] == ["eager", "compile"]
    c = rows[1]
    assert c["like_for_like"] == pytest.approx(16.0)  # 800 / 50
    assert c["surf_vs_eager_baseline"] == pytest.approx(20.0)  # 1000 / 50
    assert c["baseline_vs_eager"] == pytest.approx(1.25) and c["surf_vs_eager_surf"] == pytest.approx(2.0)
    table = accel_markdown(rows)
    assert "**20.0x**" in table and ">= 20x: met" in table and "| helped |" in table
    assert plot_accel(rows, tmp_path / "a.png").stat().st_size > 0


def test_missing_eager_row_is_a_clear_error(tmp_path):
    _result(tmp_path / "speed_wan14b_fp8.json", "1080p", 800.0, 50.0, quantize="fp8")
    with pytest.raises(ValueError, match="no eager wan14b row for 1080p"):
        accel_rows(tmp_path)


def test_labels():
    assert accel_label({"compile": True, "batch_cfg": True, "attention_backend": "_native_cudnn", "quantize": "fp8"}) == (
        "compile + batch_cfg + _native_cudnn + fp8")
    assert accel_label({}) == "eager"


def test_a_run_with_its_own_eager_baseline_is_compared_with_it(tmp_path):
    # --eager-baseline rows (other folder, other machine) use the eager baseline they timed themselves
    _result(tmp_path / "a" / "speed_wan14b.json", "720p", 1000.0, 100.0)
    _result(tmp_path / "b" / "speed_wan14b_compile_fora.json", "720p", 800.0, 40.0, compile=True, cache="fora")
    res = json.loads((tmp_path / "b" / "speed_wan14b_compile_fora.json").read_text())
    res["runs"][0]["baseline_eager"] = {"seconds": 1200.0}
    (tmp_path / "b" / "speed_wan14b_compile_fora.json").write_text(json.dumps(res))
    rows = accel_rows([tmp_path / "a", tmp_path / "b"])
    fora = next(r for r in rows if r["label"] == "compile + cache fora")
    assert fora["surf_vs_eager_baseline"] == pytest.approx(30.0)  # 1200 / 40, not 1000 / 40
    assert fora["baseline_vs_eager"] == pytest.approx(1.5) and fora["like_for_like"] == pytest.approx(20.0)
