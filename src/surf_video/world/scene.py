"""Scenes of the procedural video world: vocabulary, dataclasses and the seeded sampler.

A scene is a static background plus 1-3 objects, each with a colour, a shape, a size and a
motion. Everything geometric is in normalised coordinates: ``x`` runs over the width and ``y``
over the height, both in [0, 1] with ``y`` pointing down; radii are fractions of the shorter
side, so one scene renders consistently at any resolution. Motion is parameterised by the
normalised clip time ``tau`` in [0, 1], so a scene also renders at any frame count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "COLORS",
    "BG_COLORS",
    "SHAPES",
    "SIZES",
    "MOTIONS",
    "BACKGROUNDS",
    "SIZE_RADIUS",
    "SHAPE_SCALE",
    "SPIN_SHAPES",
    "WorldObject",
    "Scene",
    "sample_scene",
    "object_state",
]

# Object colours: saturated and bright (at least one channel >= 225), far apart in RGB.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (235, 35, 35),
    "green": (40, 210, 60),
    "blue": (45, 95, 255),
    "yellow": (250, 225, 30),
    "magenta": (235, 45, 225),
    "cyan": (30, 225, 235),
    "orange": (255, 140, 0),
    "white": (245, 245, 245),
}
# Background colours: dark and muted (no channel above ~125 even on the light tone of a pattern),
# so object pixels separate from background pixels by brightness and saturation alone.
BG_COLORS: dict[str, tuple[int, int, int]] = {
    "gray": (70, 70, 74),
    "blue": (25, 40, 95),
    "green": (30, 75, 40),
    "brown": (85, 55, 30),
    "purple": (65, 30, 85),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")
SIZES: tuple[str, ...] = ("small", "big")
MOTIONS: tuple[str, ...] = (
    "still",
    "left",
    "right",
    "up",
    "down",
    "up-left",
    "up-right",
    "down-left",
    "down-right",
    "bouncing",
    "spinning",
    "growing",
)
BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "stripes", "checker", "noise")

# Circumradius as a fraction of the shorter image side.
SIZE_RADIUS: dict[str, float] = {"small": 0.10, "big": 0.16}
# Per-shape factor so that shapes of one size look about equally large.
SHAPE_SCALE: dict[str, float] = {"circle": 1.0, "ring": 1.0, "square": 0.95, "triangle": 1.15, "star": 1.2}
# Spinning is only visible (and only evaluable) for shapes without rotational symmetry of a disc.
SPIN_SHAPES: tuple[str, ...] = ("square", "triangle", "star")

# Motion constants (normalised units), shared by the renderer and the evaluator's tests.
TRAVEL = 0.40  # distance covered by left/right/up/down over the clip
DIAG_TRAVEL = 0.30  # per-axis distance of diagonal motion (0.42 along the diagonal)
BOUNCE_HEIGHT = 0.25  # height of each of the two bounces
GROW_RANGE = (0.5, 1.25)  # scale at tau=0 and tau=1
SPIN_TURN = np.pi  # rotation over the clip (radians)
_DIRS = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "up-left": (-1, -1),
    "up-right": (1, -1),
    "down-left": (-1, 1),
    "down-right": (1, 1),
}
_MARGIN = 0.02  # keep shapes this far inside the frame
_GAP = 0.04  # minimal gap between two objects at every moment


@dataclass(frozen=True)
class WorldObject:
    """One object of a scene.

    Attributes:
        color: key of ``COLORS``.
        shape: one of ``SHAPES``.
        size: ``"small"`` or ``"big"``.
        motion: one of ``MOTIONS``.
        x: start centre, fraction of the width.
        y: start centre, fraction of the height (down).
        spin_dir: +1 clockwise on screen, -1 counter-clockwise (only used when spinning).
    """

    color: str
    shape: str
    size: str
    motion: str
    x: float
    y: float
    spin_dir: int = 1

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise ValueError(f"color must be one of {sorted(COLORS)}, got {self.color!r}")
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, got {self.shape!r}")
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {self.size!r}")
        if self.motion not in MOTIONS:
            raise ValueError(f"motion must be one of {MOTIONS}, got {self.motion!r}")

    @property
    def radius(self) -> float:
        """Base circumradius as a fraction of the shorter image side."""
        return SIZE_RADIUS[self.size] * SHAPE_SCALE[self.shape]


@dataclass(frozen=True)
class Scene:
    """A background and its objects (drawn in order, later ones on top).

    Attributes:
        objects: 1-3 ``WorldObject``.
        background: pattern, one of ``BACKGROUNDS``.
        bg_color: key of ``BG_COLORS``.
        num_frames: default number of frames when rendered.
        texture_seed: seed of the continuous noise texture (``background == "noise"``).
    """

    objects: tuple[WorldObject, ...]
    background: str
    bg_color: str
    num_frames: int = 17
    texture_seed: int = 0
    meta: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.objects) <= 3:
            raise ValueError(f"objects must hold 1 to 3 WorldObject, got {len(self.objects)}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.bg_color not in BG_COLORS:
            raise ValueError(f"bg_color must be one of {sorted(BG_COLORS)}, got {self.bg_color!r}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")

    @property
    def caption(self) -> str:
        """The scene's caption (see ``surf_video.world.captions.caption_of``)."""
        from .captions import caption_of

        return caption_of(self)


def object_state(obj: WorldObject, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre, radius and rotation of an object at normalised times ``tau``.

    Args:
        obj: the object.
        tau: float array [T] of times in [0, 1].

    Returns:
        ``(x, y, radius, angle)``, each float [T]: centre (normalised), circumradius (fraction of
        the shorter side) and rotation in radians (clockwise on screen).
    """
    tau = np.asarray(tau, dtype=np.float64)
    x = np.full_like(tau, obj.x)
    y = np.full_like(tau, obj.y)
    r = np.full_like(tau, obj.radius)
    ang = np.zeros_like(tau)
    m = obj.motion
    if m in _DIRS:
        dx, dy = _DIRS[m]
        dist = DIAG_TRAVEL if dx and dy else TRAVEL
        x = x + dx * dist * tau
        y = y + dy * dist * tau
    elif m == "bouncing":
        # Two bounces off the start height (the "floor"): up, down, up, down.
        y = y - BOUNCE_HEIGHT * np.abs(np.sin(2.0 * np.pi * tau))
    elif m == "growing":
        r = r * (GROW_RANGE[0] + (GROW_RANGE[1] - GROW_RANGE[0]) * tau)
    elif m == "spinning":
        ang = obj.spin_dir * SPIN_TURN * tau
    return x, y, r, ang


_TAU_CHECK = np.linspace(0.0, 1.0, 33)


def _fits(obj: WorldObject) -> bool:
    x, y, r, _ = object_state(obj, _TAU_CHECK)
    return bool(np.all(x - r >= _MARGIN) and np.all(x + r <= 1 - _MARGIN) and np.all(y - r >= _MARGIN) and np.all(y + r <= 1 - _MARGIN))


def _apart(a: WorldObject, b: WorldObject) -> bool:
    xa, ya, ra, _ = object_state(a, _TAU_CHECK)
    xb, yb, rb, _ = object_state(b, _TAU_CHECK)
    return bool(np.all(np.hypot(xa - xb, ya - yb) >= ra + rb + _GAP))


def _rng(rng: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be an int seed or a numpy Generator, got {type(rng).__name__}")


def sample_scene(
    rng: int | np.random.Generator | None = None,
    max_objects: int = 3,
    num_frames: int = 17,
    min_objects: int = 1,
) -> Scene:
    """Draw a random scene; deterministic for an int seed.

    Objects get distinct colours, stay inside the frame and never touch during the clip
    (rejection sampling; an object that finds no place after many tries is dropped, so a scene
    can hold fewer objects than drawn, never fewer than one).

    Args:
        rng: int seed or ``numpy.random.Generator``.
        max_objects: at most this many objects (1-3).
        num_frames: default frame count of the scene.
        min_objects: at least this many objects are drawn (1 <= min_objects <= max_objects).

    Returns:
        A ``Scene``.
    """
    if not 1 <= max_objects <= 3:
        raise ValueError(f"max_objects must be in 1..3, got {max_objects}")
    if not 1 <= min_objects <= max_objects:
        raise ValueError(f"min_objects must be in 1..max_objects, got {min_objects}")
    g = _rng(rng)
    counts = np.arange(min_objects, max_objects + 1)
    weights = np.array([0.45, 0.35, 0.2][min_objects - 1 : max_objects])
    n = int(g.choice(counts, p=weights / weights.sum()))
    colors = [str(c) for c in g.permutation(list(COLORS))[:n]]
    objects: list[WorldObject] = []
    for color in colors:
        shape = str(g.choice(SHAPES))
        size = str(g.choice(SIZES))
        allowed = [m for m in MOTIONS if m != "spinning" or shape in SPIN_SHAPES]
        motion = str(g.choice(allowed))
        spin_dir = int(g.choice([-1, 1]))
        # Start positions are drawn from the range that keeps the whole trajectory in frame.
        x0, y0, r0, _ = object_state(WorldObject(color, shape, size, motion, 0.0, 0.0, spin_dir), _TAU_CHECK)
        xlo, xhi = float(np.max(_MARGIN + r0 - x0)), float(np.min(1 - _MARGIN - r0 - x0))
        ylo, yhi = float(np.max(_MARGIN + r0 - y0)), float(np.min(1 - _MARGIN - r0 - y0))
        for _ in range(40):
            cand = WorldObject(color, shape, size, motion, float(g.uniform(xlo, xhi)), float(g.uniform(ylo, yhi)), spin_dir)
            if _fits(cand) and all(_apart(cand, o) for o in objects):
                objects.append(cand)
                break
    if not objects:  # the first object always fits somewhere; this guards a pathological rng
        objects.append(WorldObject(colors[0], "circle", "small", "still", 0.5, 0.5))
    background = str(g.choice(BACKGROUNDS))
    bg_color = str(g.choice(list(BG_COLORS)))
    return Scene(tuple(objects), background, bg_color, num_frames=num_frames, texture_seed=int(g.integers(0, 2**31 - 1)))
