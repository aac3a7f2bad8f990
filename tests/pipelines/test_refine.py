"""The full two-stage SURF pipeline (preview -> refiner) on tiny local components."""

import pytest
import torch

from surf_video.models.refiner import RefinerTransformer3DModel
from surf_video.pipelines import SURFPipeline

KW = dict(num_frames=5, num_inference_steps=4, guidance_scale=3.0, switch_step=2, base_height=32, base_width=32,
          preview_height=16, preview_width=16)


@pytest.fixture(scope="module")
def refiner():
    torch.manual_seed(0)
    return RefinerTransformer3DModel.from_config_name("refiner-tiny", text_dim=32).eval()


@pytest.fixture(scope="module")
def surf(wan, refiner):
    s = SURFPipeline.from_pipe(wan, refiner=refiner)
    s.set_progress_bar_config(disable=True)
    return s


def test_full_pipeline_shapes_and_counts(surf):
    calls = []
    h = surf.refiner.register_forward_hook(lambda m, a, k, o: calls.append(k["hidden_states"].shape), with_kwargs=True)
    try:
        out = surf("a red circle", height=48, width=64, refine_steps=3, generator=torch.Generator().manual_seed(0),
                   output_type="np", **KW)
    finally:
        h.remove()
    assert out.frames.shape == (1, 5, 48, 64, 3)
    assert out.preview_latents.shape == (1, 16, 2, 2, 2)
    assert out.latents.shape == (1, 16, 2, 6, 8)
    assert len(calls) == 3 and all(tuple(c[-2:]) == (6, 8) for c in calls)
    assert out.num_evaluations["refine"] == 3 and "refine" in out.timings


def test_refine_saved_preview_equals_one_call(surf):
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    full = surf("a red circle", height=48, width=64, refine_steps=2, generator=g(), output_type="latent", **KW)
    prev = surf("a red circle", generator=g(), output_type="latent", **KW)
    torch.testing.assert_close(prev.preview_latents, full.preview_latents)
    again = surf.refine(prev.preview_latents, "a red circle", 48, 64, refine_steps=2, output_type="latent")
    torch.testing.assert_close(again, full.latents, rtol=1e-5, atol=1e-5)


def test_num_previews_batches(surf):
    out = surf("a red circle", num_previews=3, generator=torch.Generator().manual_seed(1), output_type="latent", **KW)
    assert out.preview_latents.shape[0] == 3
    assert not torch.allclose(out.preview_latents[0], out.preview_latents[1])
    z = surf.refine(out.preview_latents[1:2], "a red circle", 32, 32, refine_steps=1, output_type="latent")
    assert z.shape == (1, 16, 2, 4, 4)


def test_refine_errors(surf, wan):
    prev = torch.zeros(1, 16, 2, 2, 2)
    with pytest.raises(ValueError, match="smaller than the preview"):
        surf.refine(torch.zeros(1, 16, 2, 4, 4), "x", 16, 16)
    with pytest.raises(ValueError, match="multiples of 16"):
        surf.refine(prev, "x", 8, 8)
    with pytest.raises(ValueError, match="channels"):
        surf.refine(torch.zeros(1, 4, 2, 2, 2), "x", 32, 32)
    with pytest.raises(ValueError, match="refine_steps"):
        surf.refine(prev, "x", 32, 32, refine_steps=0)
    with pytest.raises(ValueError, match="no refiner"):
        SURFPipeline.from_pipe(wan).refine(prev, "x", 32, 32)
    with pytest.raises(ValueError, match="smaller than the preview"):
        surf("a red circle", height=16, width=16, preview_height=32, preview_width=32,
             **{k: v for k, v in KW.items() if not k.startswith("preview")})
    bad = RefinerTransformer3DModel.from_config_name("refiner-tiny", in_channels=4, out_channels=4, text_dim=32)
    with pytest.raises(ValueError, match="latent channels"):
        SURFPipeline.from_pipe(wan, refiner=bad)


def test_upscale_existing_video(surf, tmp_path):
    import numpy as np

    from surf_video.api import upscale_video
    from surf_video.io.video import read_video, write_video

    rng = np.random.default_rng(0)
    write_video(tmp_path / "in.mp4", rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8))
    info = upscale_video(surf, tmp_path / "in.mp4", tmp_path / "out.mp4", height=64, width=64, prompt="a red circle",
                         refine_steps=2)
    assert read_video(tmp_path / "out.mp4").shape == (5, 64, 64, 3)
    assert info["height"] == 64


def test_upscale_back_projection_pulls_the_output_to_the_input(surf, tmp_path):
    import numpy as np
    import torch.nn.functional as F

    from surf_video.api import upscale_video
    from surf_video.io.video import read_video, write_video

    yy, xx = np.mgrid[0:32, 0:32] / 31.0  # smooth frames: the codec keeps them nearly intact
    frames = np.stack([np.stack([yy, xx, (yy + xx + t / 5) % 1.0], -1) for t in range(5)])
    write_video(tmp_path / "in.mp4", (frames * 255).astype(np.uint8))
    src = torch.from_numpy(read_video(tmp_path / "in.mp4")).permute(0, 3, 1, 2).float() / 255
    errs = []
    for n in (0, 5):
        upscale_video(surf, tmp_path / "in.mp4", tmp_path / f"out{n}.mp4", height=64, width=64, refine_steps=2,
                      back_projection=n)
        out = torch.from_numpy(read_video(tmp_path / f"out{n}.mp4")).permute(0, 3, 1, 2).float() / 255
        errs.append((F.interpolate(out, size=(32, 32), mode="area") - src).abs().mean().item())
    assert errs[1] < 0.25 * errs[0], errs  # random refiner weights: far from the input until back-projected
    with pytest.raises(ValueError, match="back_projection must be >= 0"):
        upscale_video(surf, tmp_path / "in.mp4", tmp_path / "x.mp4", height=64, width=64, back_projection=-1)
