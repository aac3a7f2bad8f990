"""The procedural world: seeded scenes, captions, resolution-consistent rendering, and the evaluator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surf_video.world import (
    BACKGROUNDS,
    COLORS,
    MOTIONS,
    SHAPES,
    VOCAB,
    Scene,
    WorldObject,
    caption_of,
    evaluate_video,
    parse_caption,
    render_scene,
    sample_scene,
)
from surf_video.world.evaluate import degrade_video
from surf_video.world.validate import perturb_caption


def _area_down(x: np.ndarray, f: int) -> np.ndarray:
    """Box-downsample the two axes before the last of [..., H, W, C] by an integer factor."""
    *lead, h, w, c = x.shape
    return x.reshape(*lead, h // f, f, w // f, f, c).mean(axis=(-4, -2))


def test_sampling_and_rendering_are_deterministic_per_seed():
    a, b = sample_scene(7), sample_scene(7)
    assert a == b and a.caption == b.caption
    va, ta = render_scene(a, 64, 9)
    vb, tb = render_scene(b, 64, 9)
    assert va.dtype == np.uint8 and va.shape == (9, 64, 64, 3)
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(ta["masks"], tb["masks"])
    assert {sample_scene(s).caption for s in range(20)} != {a.caption}
    # a Generator works too and advances
    g = np.random.default_rng(3)
    assert sample_scene(g) != sample_scene(g)


def test_truth_shapes_and_objects_stay_inside_and_apart():
    for seed in range(30):
        scene = sample_scene(seed)
        video, truth = render_scene(scene, 64, 17)
        n = len(scene.objects)
        assert 1 <= n <= 3 and len({o.color for o in scene.objects}) == n
        assert truth["masks"].shape == (17, n, 64, 64) and truth["masks"].dtype == bool
        assert truth["centroids"].shape == (17, n, 2)
        assert truth["classes"] == [(o.color, o.shape) for o in scene.objects]
        # every object is visible in every frame and never overlaps another
        assert (truth["masks"].sum(axis=(2, 3)) > 0).all()
        assert (truth["masks"].sum(axis=1) <= 1).all()


def test_same_scene_agrees_across_resolutions():
    for seed in (1, 4, 9):
        scene = sample_scene(seed)
        lo, tlo = render_scene(scene, 64, 5)
        hi, thi = render_scene(scene, 128, 5)
        down = _area_down(hi.astype(np.float64), 2)
        assert np.abs(down - lo).mean() < 3.0  # backgrounds (stripes, checker, noise) included
        m_hi = _area_down(thi["masks"][..., None].astype(np.float64), 2)[..., 0] >= 0.5
        inter = (m_hi & tlo["masks"]).sum()
        union = (m_hi | tlo["masks"]).sum()
        assert inter / union > 0.9
        np.testing.assert_allclose((thi["centroids"] + 0.5) / 2 - 0.5, tlo["centroids"], atol=1e-9)
    # 288 = 2.25 * 128 is not an integer factor: compare after downsampling both to 32 px
    scene = sample_scene(2)
    a = _area_down(render_scene(scene, 288, 3)[0].astype(np.float64), 9)
    b = _area_down(render_scene(scene, 192, 3)[0].astype(np.float64), 6)
    assert np.abs(a - b).mean() < 2.0


def test_non_square_size_and_bad_arguments():
    video, truth = render_scene(sample_scene(0), (48, 80), 3)
    assert video.shape == (3, 48, 80, 3) and truth["masks"].shape[-2:] == (48, 80)
    with pytest.raises(ValueError, match="size"):
        render_scene(sample_scene(0), (4, 4))
    with pytest.raises(ValueError, match="max_objects"):
        sample_scene(0, max_objects=4)
    with pytest.raises(ValueError, match="shape"):
        WorldObject("red", "hexagon", "big", "still", 0.5, 0.5)
    with pytest.raises(ValueError, match="rng"):
        sample_scene("seed")


def test_captions_parse_back_and_use_only_vocab():
    assert VOCAB == sorted(set(VOCAB))
    for seed in range(100):
        scene = sample_scene(seed)
        cap = caption_of(scene)
        assert set(cap.split()) <= set(VOCAB)
        parsed = parse_caption(cap)
        assert parsed["background"] == scene.background and parsed["bg_color"] == scene.bg_color
        assert parsed["objects"] == [{"size": o.size, "color": o.color, "shape": o.shape, "motion": o.motion} for o in scene.objects]
    assert parse_caption("a red circle moving right")["objects"] == [{"size": None, "color": "red", "shape": "circle", "motion": "right"}]
    for bad in ("", "a big red blob moving left", "a big red circle dancing", "a big red circle moving left on a shiny background"):
        with pytest.raises(ValueError):
            parse_caption(bad)


def test_all_backgrounds_shapes_and_motions_are_sampled():
    scenes = [sample_scene(s) for s in range(300)]
    assert {s.background for s in scenes} == set(BACKGROUNDS)
    objs = [o for s in scenes for o in s.objects]
    assert {o.shape for o in objs} == set(SHAPES)
    assert {o.motion for o in objs} == set(MOTIONS)
    assert {o.color for o in objs} == set(COLORS)
    assert all(o.shape in ("square", "triangle", "star") for o in objs if o.motion == "spinning")


@pytest.mark.parametrize("size,blur,noise", [(64, 0.0, 0.0), (64, 0.5, 6.0), (128, 1.0, 6.0)])
def test_evaluator_is_right_on_renders(size, blur, noise):
    for seed in range(6):
        scene = sample_scene(500 + seed)
        video, truth = render_scene(scene, size)
        if blur or noise:
            video = degrade_video(video, seed, blur=blur, noise=noise)
        rep = evaluate_video(video, scene.caption)
        assert rep["all_correct"], (scene.caption, rep["objects"], rep["detected"])
        n = len(scene.objects)
        assert rep["masks"].shape == (17, n, size, size) and rep["centroids"].shape == (17, n, 2)
        # centroid tracks follow the truth within a pixel or two
        assert np.nanmax(np.abs(rep["centroids"] - truth["centroids"])) < 0.03 * size
        inter = (rep["masks"] & truth["masks"]).sum()
        assert inter / (rep["masks"] | truth["masks"]).sum() > 0.7


@pytest.mark.parametrize("motion", MOTIONS)
def test_every_motion_is_recognised(motion):
    shape = "star" if motion == "spinning" else "square"
    x, y = {"left": (0.75, 0.5), "right": (0.25, 0.5), "up": (0.5, 0.75), "down": (0.5, 0.25), "bouncing": (0.5, 0.75)}.get(motion, (0.5, 0.5))
    if "-" in motion:
        x = 0.7 if "left" in motion else 0.3
        y = 0.7 if "up" in motion else 0.3
    scene = Scene((WorldObject("orange", shape, "small", motion, x, y),), "stripes", "purple")
    rep = evaluate_video(render_scene(scene, 64)[0], scene.caption)
    assert rep["objects"][0]["motion"] == motion and rep["all_correct"]


def test_evaluator_rejects_wrong_captions():
    obj = WorldObject("red", "square", "big", "left", 0.7, 0.4)
    other = WorldObject("cyan", "ring", "small", "still", 0.3, 0.8)
    scene = Scene((obj, other), "checker", "gray")
    video, _ = render_scene(scene, 64)
    assert evaluate_video(video, scene.caption)["all_correct"]

    def check(objs, attr):
        rep = evaluate_video(video, caption_of(Scene(tuple(objs), "checker", "gray")))
        assert not rep[attr] and not rep["all_correct"], attr

    from dataclasses import replace

    check([replace(obj, color="blue"), other], "color")
    check([replace(obj, motion="right"), other], "motion")
    check([replace(obj, motion="up-left"), other], "motion")
    check([obj, replace(other, shape="circle")], "shape")
    check([obj], "count")
    check([obj, other, WorldObject("white", "star", "small", "still", 0.5, 0.5)], "count")
    # perturbed captions stay valid (1-3 objects) for any scene, and differ from the truth
    for seed in range(60):
        sc = sample_scene(seed)
        cap, attr = perturb_caption(sc, np.random.default_rng(seed))
        assert cap != sc.caption and 1 <= len(parse_caption(cap)["objects"]) <= 3
    # perturbed captions change exactly the attribute they name
    rng = np.random.default_rng(0)
    for _ in range(10):
        cap, attr = perturb_caption(scene, rng)
        assert cap != scene.caption and not evaluate_video(video, cap)[attr]


def test_cli_sample_writes_clips_and_captions(tmp_path):
    from surf_video.cli.main import main
    from surf_video.io.video import read_video

    assert main(["world", "sample", "--n", "2", "--size", "64", "--frames", "9", "--out", str(tmp_path)]) == 0
    lines = [json.loads(x) for x in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert [d["caption"] for d in lines] == [sample_scene(0, num_frames=9).caption, sample_scene(1, num_frames=9).caption]
    clip = read_video(tmp_path / lines[0]["file"])
    assert clip.shape == (9, 64, 64, 3)
    assert evaluate_video(clip, lines[0]["caption"])["color"]


def test_evaluator_handles_empty_and_float_videos():
    scene = sample_scene(11)
    empty = np.zeros((5, 64, 64, 3), np.uint8)
    rep = evaluate_video(empty, scene.caption)
    assert not rep["count"] and not rep["color"] and not rep["all_correct"]
    assert np.isnan(rep["centroids"]).all() and not rep["masks"].any()
    video, _ = render_scene(scene, 64)
    assert evaluate_video(video.astype(np.float32) / 255.0, scene.caption)["all_correct"]
    with pytest.raises(ValueError, match="video"):
        evaluate_video(video[0], scene.caption)
