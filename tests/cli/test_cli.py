"""The ``surf`` console script on tiny local pipelines (no download)."""

import json

import pytest

from surf_video.cli.main import build_parser, main
from surf_video.io.video import read_video


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for name in ("generate", "preview", "refine", "upscale"):
        assert name in text


def test_generate_preview_refine_round_trip(tmp_path, capsys):
    out = tmp_path / "gen.mp4"
    assert main(["generate", "a red circle moving left", "--base", "tiny-wan", "--out", str(out), "--steps", "4",
                 "--switch-step", "2", "--refine-steps", "2", "--height", "48", "--width", "48"]) == 0
    assert read_video(out).shape == (5, 48, 48, 3)
    assert main(["preview", "a red circle", "--base", "tiny-wan", "--out-dir", str(tmp_path / "p"), "--steps", "4",
                 "--switch-step", "2", "--num-previews", "2"]) == 0
    assert read_video(tmp_path / "p" / "preview_1.mp4").shape == (5, 16, 16, 3)
    capsys.readouterr()
    assert main(["refine", "--preview", str(tmp_path / "p" / "preview_1.safetensors"), "--base", "tiny-wan",
                 "--out", str(tmp_path / "r.mp4"), "--height", "32", "--width", "48", "--refine-steps", "2"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (info["height"], info["width"], info["frames"]) == (32, 48, 5)


@pytest.mark.parametrize("argv,match", [
    (["--frames", "6"], "num_frames"),
    (["--switch-step", "99"], "switch_step"),
    (["--preview-height", "24"], "multiples of 16"),
])
def test_generate_errors_are_one_line(tmp_path, capsys, argv, match):
    rc = main(["generate", "a red circle", "--base", "tiny-wan", "--out", str(tmp_path / "x.mp4"), "--steps", "4",
               *argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


def test_refine_rejects_non_safetensors(tmp_path, capsys):
    (tmp_path / "p.pt").write_bytes(b"x")
    rc = main(["refine", "--preview", str(tmp_path / "p.pt"), "--base", "tiny-wan", "--out", str(tmp_path / "o.mp4"),
               "--height", "32", "--width", "32"])
    assert rc == 2 and "safetensors" in capsys.readouterr().err


def test_parser_builds():
    assert build_parser().prog == "surf"


def test_cache_flag_parsing():
    from surf_video.cli.generate import parse_cache

    assert parse_cache(None) is None
    assert parse_cache("fbc:0.1").threshold == 0.1
    assert parse_cache("taylorseer:3").cache_interval == 3
    assert r"^blocks\.\d+\.(attn1|attn2|ffn)$" in parse_cache("taylorseer:3").cache_identifiers  # Wan's blocks
    fora = parse_cache("fora:2")
    assert (fora.cache_interval, fora.max_order) == (2, 0) and r"^blocks\.\d+$" in fora.cache_identifiers
    with pytest.raises(ValueError, match="--cache"):
        parse_cache("teacache:1")
    with pytest.raises(ValueError, match="--cache"):
        parse_cache("fbc:abc")


def test_cache_flag_shares_the_benchmarks_syntax_and_defaults():
    from surf_video.bench.signature_accel import DEFAULTS
    from surf_video.cli.generate import parse_cache

    assert parse_cache("fbcache").threshold == parse_cache("fbc").threshold == DEFAULTS["fbcache"]["threshold"]
    ts = parse_cache("taylorseer:3:2")
    assert (ts.cache_interval, ts.disable_cache_before_step) == (3, 2)
    assert "^transformer_blocks.*attn" in ts.cache_identifiers  # HunyuanVideo's patterns too
    fora = parse_cache("fora")
    assert (fora.cache_interval, fora.disable_cache_before_step) == (4, 3)
    assert r"^transformer_blocks\.\d+$" in fora.cache_identifiers
    for bad, msg in (("fora:0", "INTERVAL >= 1"), ("compile", "--cache must be"), ("fbc,fora", "--cache must be"),
                     ("fora:1:2:3", "at most 2")):
        with pytest.raises(ValueError, match=msg):
            parse_cache(bad)


def test_upscale_back_projection_flag_is_parsed_and_checked(capsys):
    args = build_parser().parse_args(["upscale", "in.mp4", "--out", "o.mp4", "--height", "64", "--width", "64",
                                      "--back-projection", "3"])
    assert args.back_projection == 3
    assert build_parser().parse_args(["upscale", "in.mp4", "--out", "o.mp4", "--height", "64", "--width", "64"]
                                     ).back_projection == 0  # off unless asked for
    for bad in ("-1", "two"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["upscale", "in.mp4", "--out", "o.mp4", "--height", "64", "--width", "64",
                                       "--back-projection", bad])
        assert "--back-projection: must be an integer >= 0" in capsys.readouterr().err
