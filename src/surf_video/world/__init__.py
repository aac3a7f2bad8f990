"""The procedural video world: seeded scenes, captions, anti-aliased rendering at any size, and a
pixel-only evaluator of (video, caption) pairs.

Example::

    from surf_video.world import sample_scene, render_scene, evaluate_video
    scene = sample_scene(0)
    video, truth = render_scene(scene, size=128, num_frames=17)   # uint8 [17, 128, 128, 3]
    report = evaluate_video(video, scene.caption)                   # report["all_correct"]
"""

from .captions import BACKGROUND_WORDS, MOTION_PHRASES, VOCAB, caption_of, parse_caption
from .evaluate import evaluate_video
from .render import render_background, render_scene, shape_sdf
from .scene import BACKGROUNDS, BG_COLORS, COLORS, MOTIONS, SHAPES, SIZES, Scene, WorldObject, object_state, sample_scene

__all__ = [
    "Scene",
    "WorldObject",
    "sample_scene",
    "object_state",
    "render_scene",
    "render_background",
    "shape_sdf",
    "caption_of",
    "parse_caption",
    "evaluate_video",
    "VOCAB",
    "COLORS",
    "BG_COLORS",
    "SHAPES",
    "SIZES",
    "MOTIONS",
    "BACKGROUNDS",
    "MOTION_PHRASES",
    "BACKGROUND_WORDS",
]
