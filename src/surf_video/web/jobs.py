"""The web demo's work, without Gradio: check inputs, make previews, store them per session, refine one.

Everything here is plain Python over :class:`~surf_video.pipelines.surf_pipeline.SURFPipeline`, so it is
unit-tested without a browser; :mod:`surf_video.web.app` only wires these functions to Gradio components.

Previews of a session live in ``<root>/<session id>/``: one ``.safetensors`` of latents (written by
:func:`surf_video.api.save_preview`, with the prompt and seed as metadata) and one video per preview.
Refinement reads those saved latents back, so picking a preview never re-generates it.
"""

from __future__ import annotations

import inspect
import logging
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..api import defaults_for, load_preview, save_preview, to_uint8
from ..io.video import write_video
from ..pipelines.surf_pipeline import SURFPipeline

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_PREVIEWS",
    "RENOISE_CHOICES",
    "VIDEO_CRF",
    "DemoModel",
    "PreviewRecord",
    "PreviewBatch",
    "RefineResult",
    "PreviewStore",
    "JobCancelled",
    "supported_target_sizes",
    "size_label",
    "parse_size",
    "parse_switch_step",
    "check_prompt",
    "check_num_previews",
    "make_previews",
    "refine_preview",
]

#: hard cap of previews per click: they are made in one batch, so memory and time grow with it
MAX_PREVIEWS = 4
RENOISE_CHOICES = ("flow", "paper", "snr")
#: H.264 quality of the written videos (lower is better; the default 23 visibly blurs small videos)
VIDEO_CRF = 12
_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PREVIEW_RE = re.compile(r"^[0-9a-f]{8}-[0-9]+$")
ProgressFn = Callable[[int, int, str], None]


class JobCancelled(Exception):
    """Raised inside a running job when its session pressed Cancel."""


# ---- model and its sizes ---------------------------------------------------------------------------------
def supported_target_sizes(pipe: SURFPipeline, base: str) -> list[tuple[int, int]]:
    """The refined sizes ``(height, width)`` the loaded models support, smallest first.

    A base whose :func:`~surf_video.api.defaults_for` lists ``target_sizes`` (SURF-Mini: its refiner was
    trained for exactly those) gets that list. Otherwise: 2x, 3x and 4x the preview size, kept where the
    VAE x patch multiple divides them, plus the base's default ``target_size`` if it has one.
    """
    if pipe.refiner is None:
        return []
    d = defaults_for(base)
    listed = d.get("target_sizes")
    if listed is None and base == "surf-mini":
        from ..mini.config import TARGET_SIZES

        listed = TARGET_SIZES
    if listed is not None:
        sizes = {(s, s) if isinstance(s, int) else (int(s[0]), int(s[1])) for s in listed}
    else:
        ph, pw = preview_size(pipe)
        m = pipe.adapter.size_multiple
        sizes = {(ph * r, pw * r) for r in (2, 3, 4) if (ph * r) % m == 0 and (pw * r) % m == 0}
        if d.get("target_size"):
            sizes.add(tuple(int(v) for v in d["target_size"]))
    return sorted(sizes)


def preview_size(pipe: SURFPipeline) -> tuple[int, int]:
    """The preview's pixel size: half the base model's first-stage size (SURF's default plan)."""
    return pipe.base_size[0] // 2, pipe.base_size[1] // 2


def size_label(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


@dataclass
class DemoModel:
    """A loaded SURF pipeline with what the app needs to know about it.

    Attributes:
        pipe: the pipeline (shared by every session; :attr:`lock` serialises its use).
        base: the base name given to :func:`~surf_video.api.load_pipeline` (``'surf-mini'``, ``'tiny-wan'``, a path).
        call_defaults: keyword arguments of ``pipe(...)`` taken from :func:`~surf_video.api.defaults_for`.
        target_sizes: refined sizes the models support (:func:`supported_target_sizes`).
        fps: frames per second of the written videos.
    """

    pipe: SURFPipeline
    base: str
    call_defaults: dict = field(default_factory=dict)
    target_sizes: list[tuple[int, int]] = field(default_factory=list)
    fps: int = 8
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, base: str = "surf-mini", refiner: str | None = "auto", device: str = "cpu",
             dtype: str | None = None, fps: int = 8) -> "DemoModel":
        from ..api import load_pipeline

        pipe = load_pipeline(base, refiner, device, dtype)
        return cls.from_pipe(pipe, base, fps=fps)

    @classmethod
    def from_pipe(cls, pipe: SURFPipeline, base: str, fps: int = 8) -> "DemoModel":
        pipe.set_progress_bar_config(disable=True)
        params = set(inspect.signature(SURFPipeline.__call__).parameters)
        call = {k: v for k, v in defaults_for(base).items() if k in params}
        return cls(pipe=pipe, base=base, call_defaults=call, target_sizes=supported_target_sizes(pipe, base), fps=fps)

    @property
    def num_inference_steps(self) -> int:
        return int(self.call_defaults.get("num_inference_steps", 50))

    @property
    def default_switch_step(self) -> int | str:
        return self.call_defaults.get("switch_step", min(10, self.num_inference_steps))

    @property
    def preview_size(self) -> tuple[int, int]:
        return preview_size(self.pipe)


# ---- input checks (each raises ValueError naming the input and what is allowed) -----------------------
def check_prompt(prompt: str | None) -> str:
    if prompt is None or not str(prompt).strip():
        raise ValueError("Prompt: type a description of the video first (it is empty).")
    return str(prompt).strip()


def check_num_previews(n, cap: int = MAX_PREVIEWS) -> int:
    try:
        k = float(n)
        ok = k.is_integer()
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"Number of previews: give a whole number from 1 to {cap}, got {n!r}.")
    if not 1 <= k <= cap:
        raise ValueError(f"Number of previews: at most {cap} at once (and at least 1), got {int(k)}.")
    return int(k)


def parse_size(value, allowed: list[tuple[int, int]]) -> tuple[int, int]:
    """``'192x192'`` (or ``192`` / ``(192, 192)``) to ``(h, w)`` if the models support it."""
    if not allowed:
        raise ValueError("Target size: this model has no refiner, so it cannot refine; load one with --refiner.")
    try:
        if isinstance(value, str):
            parts = [int(p) for p in value.lower().replace(" ", "").split("x")]
        elif isinstance(value, (int, float)):
            parts = [int(value)]
        else:
            parts = [int(p) for p in value]
        size = (parts[0], parts[-1]) if len(parts) in (1, 2) else None
    except (TypeError, ValueError):
        size = None
    if size not in allowed:
        raise ValueError(f"Target size: {value!r} is not supported by the loaded models; "
                         f"choose one of {', '.join(size_label(s) for s in allowed)}.")
    return size


def parse_switch_step(value, num_steps: int) -> int | str:
    """``'auto'`` or an integer in ``[0, num_steps]`` (given as int, float or text)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        k = float(value)
        ok = k.is_integer() and 0 <= k <= num_steps
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"Switch step: 'auto' or a whole number from 0 to {num_steps}, got {value!r}.")
    return int(k)


def _check_seed(seed) -> int:
    try:
        s = int(seed)
    except (TypeError, ValueError):
        raise ValueError(f"Seed: give a whole number, got {seed!r}.") from None
    if not 0 <= s < 2**63 - MAX_PREVIEWS:
        raise ValueError(f"Seed: from 0 to 2^63, got {s}.")
    return s


def _check_refine_steps(n) -> int:
    try:
        k = int(n)
    except (TypeError, ValueError):
        k = 0
    if not 1 <= k <= 100:
        raise ValueError(f"Refine steps: a whole number from 1 to 100, got {n!r}.")
    return k


# ---- per-session storage -------------------------------------------------------------------------------
@dataclass
class PreviewRecord:
    """One stored preview: ``id`` is ``<batch>-<index>``; ``seed`` reproduces it alone."""

    id: str
    seed: int
    prompt: str
    video: str
    latents: str
    index: int


@dataclass
class PreviewBatch:
    """What one Preview click made: the stored previews, per-stage seconds, the switch step(s) used and the
    previews' ``(frames, height, width)`` (the base size when the switch step is the last step)."""

    previews: list[PreviewRecord]
    timings: dict[str, float]
    switch_steps: list[int]
    shape: tuple[int, int, int] = (0, 0, 0)


@dataclass
class RefineResult:
    video: str
    preview_id: str
    height: int
    width: int
    num_frames: int
    timings: dict[str, float]


class PreviewStore:
    """Preview files under ``root/<session>/``; a session reads only its own folder."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="surf-web-"))
        self.root.mkdir(parents=True, exist_ok=True)

    def session_dir(self, session: str) -> Path:
        if not isinstance(session, str) or not _SESSION_RE.match(session):
            raise ValueError("Session: this page's session is not valid; reload the page.")
        return self.root / session

    def latents_path(self, session: str, preview_id: str) -> Path:
        if not isinstance(preview_id, str) or not _PREVIEW_RE.match(preview_id):
            raise ValueError(f"Preview: {preview_id!r} is not a preview id of this page; pick one of the previews.")
        return self.session_dir(session) / f"{preview_id}.safetensors"

    def load(self, session: str, preview_id: str) -> tuple[torch.Tensor, dict]:
        path = self.latents_path(session, preview_id)
        if not path.is_file():
            raise ValueError(f"Preview {preview_id} is no longer stored for this session (the server may have "
                             "restarted or the session expired); make new previews.")
        return load_preview(path)

    def remove_session(self, session: str) -> None:
        shutil.rmtree(self.session_dir(session), ignore_errors=True)


# ---- jobs ------------------------------------------------------------------------------------------------
def _step_callback(total: int, progress: ProgressFn | None, cancel: threading.Event | None, desc: str):
    def callback(pipe, step, t, kwargs):
        if cancel is not None and cancel.is_set():
            raise JobCancelled(desc)
        if progress is not None:
            progress(step + 1, total, desc)
        return {}

    return callback


def make_previews(model: DemoModel, store: PreviewStore, session: str, prompt: str, *, negative_prompt: str = "",
                  seed: int = 0, num_previews: int = 2, switch_step="auto", renoise: str = "flow",
                  progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                  max_previews: int = MAX_PREVIEWS) -> PreviewBatch:
    """Makes ``num_previews`` previews in ONE batched pipeline call and stores them for ``session``.

    Preview ``i`` uses a generator seeded ``seed + i`` (a list of generators, one per batch item), so each
    preview is reproducible on its own. Raises ``ValueError`` on bad input before any model work and
    :class:`JobCancelled` when ``cancel`` is set between denoising steps.
    """
    prompt = check_prompt(prompt)
    n = check_num_previews(num_previews, max_previews)
    seed = _check_seed(seed)
    steps = model.num_inference_steps
    sw = parse_switch_step(switch_step, steps)
    if renoise not in RENOISE_CHOICES:
        raise ValueError(f"Re-noise form: one of {', '.join(RENOISE_CHOICES)}, got {renoise!r}.")
    folder = store.session_dir(session)
    folder.mkdir(parents=True, exist_ok=True)
    kwargs = dict(model.call_defaults, switch_step=sw, renoise=renoise, num_previews=n, output_type="np",
                  negative_prompt=(negative_prompt or "").strip() or None)
    device = str(model.pipe.adapter.device)
    gens = [torch.Generator(device=device).manual_seed(seed + i) for i in range(n)]
    callback = _step_callback(steps, progress, cancel, "Preview")
    with model.lock:
        if cancel is not None and cancel.is_set():
            raise JobCancelled("Preview")
        t0, c0 = time.perf_counter(), time.process_time()
        result = model.pipe(prompt, generator=gens, callback_on_step_end=callback, **kwargs)
        timings = {k: float(v) for k, v in result.timings.items()}
        t1 = time.perf_counter()
        batch = uuid.uuid4().hex[:8]
        records = []
        for i in range(n):
            pid = f"{batch}-{i}"
            video = write_video(folder / f"{pid}.mp4", to_uint8(result.frames[i]), fps=model.fps, crf=VIDEO_CRF)
            meta = {"prompt": prompt, "seed": seed + i, "index": i, "switch_steps": result.switch_steps,
                    "base": model.base}
            lat = save_preview(folder / f"{pid}.safetensors", result.preview_latents[i : i + 1], meta)
            records.append(PreviewRecord(pid, seed + i, prompt, str(video), str(lat), i))
        timings["write"] = time.perf_counter() - t1
        timings["total"] = time.perf_counter() - t0
        timings["process_cpu"] = time.process_time() - c0
    f, h, w = result.frames.shape[1:4]
    return PreviewBatch(records, timings, list(result.switch_steps), (int(f), int(h), int(w)))


def refine_preview(model: DemoModel, store: PreviewStore, session: str, preview_id: str, *, target_size,
                   refine_steps: int = 10, prompt: str | None = None, progress: ProgressFn | None = None,
                   cancel: threading.Event | None = None) -> RefineResult:
    """Refines the SAVED latents of ``session``'s preview ``preview_id`` to ``target_size`` and writes an mp4.

    The prompt stored with the preview is used unless ``prompt`` is given. Progress is reported per
    refiner evaluation (one per flow-map step) through a forward hook on the refiner.
    """
    h, w = parse_size(target_size, model.target_sizes)
    steps = _check_refine_steps(refine_steps)
    latents, meta = store.load(session, preview_id)
    text = check_prompt(prompt if prompt else meta.get("prompt"))
    pipe = model.pipe
    calls = [0]

    def hook(module, args):
        if cancel is not None and cancel.is_set():
            raise JobCancelled("Refine")
        calls[0] += 1
        if progress is not None:
            progress(calls[0], steps, "Refine")

    with model.lock:
        if cancel is not None and cancel.is_set():
            raise JobCancelled("Refine")
        handle = pipe.refiner.register_forward_pre_hook(hook)
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            gen = torch.Generator(device=str(pipe.adapter.device)).manual_seed(int(meta.get("seed", 0)))
            z = pipe.refine(latents, text, h, w, refine_steps=steps, generator=gen, output_type="latent",
                            max_sequence_length=int(model.call_defaults.get("max_sequence_length", 512)))
            t1 = time.perf_counter()
            with torch.no_grad():
                frames = pipe.adapter.decode(z, "np")
            t2 = time.perf_counter()
        finally:
            handle.remove()
        out = store.session_dir(session) / f"{preview_id}_refined_{h}x{w}_{uuid.uuid4().hex[:6]}.mp4"
        video = to_uint8(frames[0])
        write_video(out, video, fps=model.fps, crf=VIDEO_CRF)
        t3 = time.perf_counter()
        timings = {"refine": t1 - t0, "decode": t2 - t1, "write": t3 - t2, "total": t3 - t0,
                   "process_cpu": time.process_time() - c0}
    return RefineResult(str(out), preview_id, int(video.shape[1]), int(video.shape[2]), int(video.shape[0]), timings)
