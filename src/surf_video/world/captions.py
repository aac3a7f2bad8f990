"""Captions of world scenes: writing them from a scene, parsing them back, and the vocabulary.

Grammar (lower case, single spaces, no punctuation, so a whitespace word tokenizer suffices)::

    caption    := object ("and" object)* "on a" background
    object     := "a" size colour shape motion
    motion     := "staying still" | "moving left|right|up|down"
                | "moving diagonally up|down left|right" | "bouncing" | "spinning" | "growing"
    background := "plain" bgcolour "background" | bgcolour ("gradient"|"striped"|"checkered"|"textured") "background"

Example: ``"a big red circle moving left and a small white star spinning on a blue striped background"``.
"""

from __future__ import annotations

from .scene import BACKGROUNDS, BG_COLORS, COLORS, SHAPES, SIZES, Scene

__all__ = ["caption_of", "parse_caption", "VOCAB", "MOTION_PHRASES", "BACKGROUND_WORDS"]

MOTION_PHRASES: dict[str, str] = {
    "still": "staying still",
    "left": "moving left",
    "right": "moving right",
    "up": "moving up",
    "down": "moving down",
    "up-left": "moving diagonally up left",
    "up-right": "moving diagonally up right",
    "down-left": "moving diagonally down left",
    "down-right": "moving diagonally down right",
    "bouncing": "bouncing",
    "spinning": "spinning",
    "growing": "growing",
}
# Word that names each background pattern ("plain" precedes the colour, the others follow it).
BACKGROUND_WORDS: dict[str, str] = {
    "plain": "plain",
    "gradient": "gradient",
    "stripes": "striped",
    "checker": "checkered",
    "noise": "textured",
}
_PHRASE_TO_MOTION = {v: k for k, v in MOTION_PHRASES.items()}
_WORD_TO_BACKGROUND = {v: k for k, v in BACKGROUND_WORDS.items()}


def _object_phrase(size: str, color: str, shape: str, motion: str) -> str:
    return f"a {size} {color} {shape} {MOTION_PHRASES[motion]}"


def caption_of(scene: Scene) -> str:
    """The caption of a scene (deterministic; objects in drawing order)."""
    objs = " and ".join(_object_phrase(o.size, o.color, o.shape, o.motion) for o in scene.objects)
    word = BACKGROUND_WORDS[scene.background]
    bg = f"plain {scene.bg_color}" if scene.background == "plain" else f"{scene.bg_color} {word}"
    return f"{objs} on a {bg} background"


def _parse_object(words: list[str], caption: str) -> dict:
    if len(words) < 5 or words[0] not in ("a", "an"):
        raise ValueError(f"caption: object phrase {' '.join(words)!r} must read 'a SIZE COLOUR SHAPE MOTION' in {caption!r}")
    size, color, shape = words[1], words[2], words[3]
    motion = _PHRASE_TO_MOTION.get(" ".join(words[4:]))
    if size not in SIZES or color not in COLORS or shape not in SHAPES or motion is None:
        raise ValueError(
            f"caption: cannot read object {' '.join(words)!r} (sizes {SIZES}, colours {sorted(COLORS)}, "
            f"shapes {SHAPES}, motions {sorted(MOTION_PHRASES.values())})"
        )
    return {"size": size, "color": color, "shape": shape, "motion": motion}


def parse_caption(caption: str) -> dict:
    """Parse a caption written by ``caption_of``.

    The background part is optional (``"a red circle moving right"`` parses, with background
    ``None``), and so is the size word (``size`` is then ``None``).

    Args:
        caption: the caption.

    Returns:
        ``{"objects": [{"size", "color", "shape", "motion"}, ...], "background": str | None,
        "bg_color": str | None}``.

    Raises:
        ValueError: if the caption does not follow the grammar.
    """
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError("caption must be a non-empty string")
    words = caption.lower().replace(",", " ").replace(".", " ").split()
    background = bg_color = None
    if "on" in words:
        i = len(words) - 1 - words[::-1].index("on")
        bg = words[i + 1 :]
        words = words[:i]
        if bg and bg[0] in ("a", "an"):
            bg = bg[1:]
        if len(bg) != 3 or bg[-1] != "background":
            raise ValueError(f"caption: background must read 'on a plain COLOUR background' or 'on a COLOUR PATTERN background', got {' '.join(bg)!r}")
        if bg[0] == "plain":
            background, bg_color = "plain", bg[1]
        else:
            bg_color, background = bg[0], _WORD_TO_BACKGROUND.get(bg[1])
        if background not in BACKGROUNDS or bg_color not in BG_COLORS:
            raise ValueError(f"caption: unknown background {' '.join(bg)!r} (colours {sorted(BG_COLORS)}, patterns {sorted(_WORD_TO_BACKGROUND)})")
    objects, cur = [], []
    for w in words + ["and"]:
        if w == "and":
            if cur:
                # Allow a missing size word: insert None so positions line up.
                if len(cur) >= 2 and cur[1] not in SIZES:
                    cur = [cur[0], "small"] + cur[1:]
                    obj = _parse_object(cur, caption)
                    obj["size"] = None
                else:
                    obj = _parse_object(cur, caption)
                objects.append(obj)
            cur = []
        else:
            cur.append(w)
    if not objects:
        raise ValueError(f"caption: no object found in {caption!r}")
    return {"objects": objects, "background": background, "bg_color": bg_color}


def _vocab() -> list[str]:
    words = {"a", "and", "on", "background", "plain"}
    words |= set(SIZES) | set(COLORS) | set(SHAPES) | set(BG_COLORS) | set(BACKGROUND_WORDS.values())
    for phrase in MOTION_PHRASES.values():
        words |= set(phrase.split())
    return sorted(words)


VOCAB: list[str] = _vocab()
