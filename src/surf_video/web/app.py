"""``surf web``: a Gradio Blocks app for SURF's workflow — make cheap previews, pick one, refine only that one.

The handlers here are thin: input checks, generation and storage are in :mod:`surf_video.web.jobs`. What
this module adds is the page, the per-session state (``gr.State`` + ``request.session_hash``), progress
(``gr.Progress`` fed by the pipeline's per-step callback and a refiner hook), cancellation (a Cancel button
that both cancels the Gradio event and stops the model between steps) and error messages in the page.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
from pathlib import Path

try:
    import gradio as gr
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError("surf web needs Gradio: pip install -e '.[web]' (or pip install gradio)") from err

from .jobs import (
    MAX_PREVIEWS,
    RENOISE_CHOICES,
    DemoModel,
    JobCancelled,
    PreviewStore,
    make_previews,
    refine_preview,
    size_label,
)

logger = logging.getLogger(__name__)

__all__ = ["build_app", "launch", "format_timings", "new_session_state", "CONCURRENCY_LIMIT"]

#: jobs that run the model at once (per event, previews and refinements share it): the CPU has few cores
#: and the model is shared, so one at a time, the rest wait in Gradio's queue and see their position
CONCURRENCY_LIMIT = 1
_STAGE_NAMES = {"text": "text encoder", "refine": "prompt + refiner", "decode": "VAE decode", "write": "video write"}


def format_timings(timings: dict[str, float], device: str) -> str:
    """``{'stage0': 1.2, ...}`` to one line: the total first, then each stage, then process CPU time."""
    parts = []
    for key, val in timings.items():
        if key in ("total", "process_cpu"):
            continue
        name = _STAGE_NAMES.get(key, f"stage {key[5:]}" if key.startswith("stage") else key)
        parts.append(f"{name} {val:.2f} s")
    line = f"**{timings.get('total', sum(timings.values())):.2f} s** on {device}"
    if parts:
        line += " — " + " · ".join(parts)
    if "process_cpu" in timings:
        line += f" (process CPU time {timings['process_cpu']:.2f} s)"
    return line


def new_session_state() -> dict:
    """The ``gr.State`` value of a fresh page: the session's previews by id (filled by Preview)."""
    return {"session": None, "previews": {}}


def _user_errors(fn):
    """Turns every failure into a message in the page (``gr.Error``), never a stack trace."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except JobCancelled as err:
            raise gr.Error(f"{err} cancelled.", title="Cancelled", print_exception=False) from None
        except (ValueError, FileNotFoundError) as err:
            raise gr.Error(str(err), title="Check the input", print_exception=False) from None
        except Exception as err:  # noqa: BLE001 - anything else is a server fault; log it, tell the page briefly
            logger.exception("surf web: %s failed", fn.__name__)
            raise gr.Error(f"The server failed ({type(err).__name__}); see its log. Try again.") from None

    return wrapper


def build_app(model: DemoModel, store: PreviewStore | None = None, max_previews: int = MAX_PREVIEWS):
    """Builds the Blocks app around a loaded model. ``store`` defaults to a fresh temporary folder."""
    store = store or PreviewStore()
    # per session, the cancel flags of its running and queued jobs: Cancel sets them all
    cancels: dict[str, set[threading.Event]] = {}
    cancels_lock = threading.Lock()
    device = str(model.pipe.adapter.device)
    steps = model.num_inference_steps
    sizes = [size_label(s) for s in model.target_sizes]
    ph, pw = model.preview_size
    frames = model.call_defaults.get("num_frames")

    @contextlib.contextmanager
    def job(request):
        """Yields ``(session, cancel flag)`` for one job of the page that sent ``request``."""
        session, ev = request.session_hash, threading.Event()
        with cancels_lock:
            cancels.setdefault(session, set()).add(ev)
        try:
            yield session, ev
        finally:
            with cancels_lock:
                cancels.get(session, set()).discard(ev)

    def reporter(progress):
        return lambda i, n, desc: progress((i, n), desc=f"{desc}: step {i} of {n}")

    @_user_errors
    def on_preview(state, prompt, negative, seed, num, switch, renoise, request: gr.Request,
                   progress=gr.Progress()):
        progress((0, steps), desc="Preview: encoding the prompt")
        with job(request) as (session, ev):
            batch = make_previews(model, store, session, prompt, negative_prompt=negative, seed=seed,
                                  num_previews=num, switch_step=switch, renoise=renoise, progress=reporter(progress),
                                  cancel=ev, max_previews=max_previews)
        state = dict(state or new_session_state(), session=session)
        previews = dict(state["previews"])
        for rec in batch.previews:
            previews[rec.id] = {"seed": rec.seed, "prompt": rec.prompt, "video": rec.video}
        state["previews"] = previews
        videos = []
        for i in range(max_previews):
            if i < len(batch.previews):
                rec = batch.previews[i]
                videos.append(gr.update(value=rec.video, visible=True, label=f"Preview {i + 1} · seed {rec.seed}"))
            else:
                videos.append(gr.update(value=None, visible=False))
        choices = [(f"Preview {i + 1} · seed {r.seed}", r.id) for i, r in enumerate(batch.previews)]
        nf, bh, bw = batch.shape
        status = (f"{len(batch.previews)} preview(s) of {bh}x{bw}, {nf} frames, switch step {batch.switch_steps}: "
                  + format_timings(batch.timings, device))
        return [state, status, gr.update(choices=choices, value=choices[0][1], interactive=True),
                gr.update(interactive=True)] + videos

    @_user_errors
    def on_refine(state, preview_id, size, refine_steps, request: gr.Request, progress=gr.Progress()):
        if not preview_id:
            raise ValueError("Preview: make previews and pick one first.")
        owned = (state or {}).get("previews", {})
        if preview_id not in owned:
            raise ValueError(f"Preview {preview_id} does not belong to this page's session (the server may have "
                             "restarted); make new previews.")
        progress((0, 1), desc="Refine: loading the preview")
        with job(request) as (session, ev):
            res = refine_preview(model, store, session, preview_id, target_size=size, refine_steps=refine_steps,
                                 progress=reporter(progress), cancel=ev)
        seed = owned[preview_id]["seed"]
        status = (f"Refined preview with seed {seed} to {res.height}x{res.width}, {res.num_frames} frames "
                  f"(`{Path(res.video).name}`): " + format_timings(res.timings, device))
        return res.video, gr.update(value=res.video, interactive=True), status

    def on_cancel(request: gr.Request):
        with cancels_lock:
            for ev in cancels.get(request.session_hash, ()):
                ev.set()
        gr.Info("Cancelling: the job stops after its current step.")

    def remove_session(state):
        if state and state.get("session"):
            store.remove_session(state["session"])
            with cancels_lock:
                cancels.pop(state["session"], None)

    title = f"SURF video demo — {model.base}"
    # delete_cache: Gradio's copies of served videos older than 6 h go, checked hourly
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 6 * 3600)) as demo:
        gr.Markdown(
            f"# {title}\n"
            f"SURF makes cheap **previews** ({ph}x{pw}, {frames} frames) in one batch; pick the one you like and "
            f"**refine** only that one to {' or '.join(sizes) or '(no refiner loaded)'} — from its saved latents, "
            "without generating it again. Runs on " + device + "."
        )
        state = gr.State(new_session_state(), time_to_live=6 * 3600, delete_callback=remove_session)
        with gr.Row():
            prompt = gr.Textbox(label="Prompt", placeholder="a red circle moving right", lines=2, elem_id="prompt",
                                scale=3)
            negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="negative", scale=2)
        with gr.Row():
            seed = gr.Number(label="Seed (preview i uses seed + i)", value=0, precision=0, minimum=0, elem_id="seed")
            dice = gr.Button("Random seed", elem_id="random-seed", size="sm")
            num = gr.Slider(1, max_previews, value=min(2, max_previews), step=1, label="Number of previews",
                            elem_id="num-previews")
            switch = gr.Dropdown(["auto"] + [str(k) for k in range(steps + 1)], value=str(model.default_switch_step),
                                 label=f"Switch step (of {steps}, or auto)", elem_id="switch-step")
            renoise = gr.Radio(list(RENOISE_CHOICES), value="flow", label="Re-noise form", elem_id="renoise")
        with gr.Row():
            preview_btn = gr.Button("Preview", variant="primary", elem_id="preview-btn")
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-btn")
        preview_status = gr.Markdown(elem_id="preview-status")
        with gr.Row():
            videos = [gr.Video(label=f"Preview {i + 1}", visible=False, autoplay=True, loop=True, interactive=False,
                               elem_id=f"preview-{i + 1}", height=220) for i in range(max_previews)]
        with gr.Row():
            pick = gr.Radio([], label="Preview to refine", interactive=False, elem_id="pick", scale=2)
            size = gr.Dropdown(sizes, value=sizes[-1] if sizes else None, label="Target size", elem_id="target-size")
            refine_steps = gr.Slider(1, 50, value=10, step=1, label="Refine steps", elem_id="refine-steps")
        refine_btn = gr.Button("Refine", variant="primary", interactive=False, elem_id="refine-btn")
        refine_status = gr.Markdown(elem_id="refine-status")
        final = gr.Video(label="Refined video", autoplay=True, loop=True, interactive=False, elem_id="final",
                         height=360)
        download = gr.DownloadButton("Download the refined video", interactive=False, elem_id="download")

        # preprocess=False: the values reach jobs' own checks, whose messages name the input and what is
        # allowed (Gradio's choice checks would answer a stale page after a restart with a list of ids)
        dice.click(lambda: random.randrange(2**31), outputs=seed, queue=False, api_name="random_seed")
        ev_preview = preview_btn.click(
            on_preview, [state, prompt, negative, seed, num, switch, renoise],
            [state, preview_status, pick, refine_btn] + videos, api_name="preview", concurrency_id="model",
            concurrency_limit=CONCURRENCY_LIMIT, preprocess=False,
        )
        ev_refine = refine_btn.click(
            on_refine, [state, pick, size, refine_steps], [final, download, refine_status], api_name="refine",
            concurrency_id="model", concurrency_limit=CONCURRENCY_LIMIT, preprocess=False,
        )
        cancel_btn.click(on_cancel, None, None, cancels=[ev_preview, ev_refine], queue=False,
                         api_name="cancel")
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=32)
    demo.surf_store = store  # for tests and the CLI: where the session folders are
    return demo


def launch(demo, host: str = "127.0.0.1", port: int = 7860, block: bool = True, quiet: bool = False):
    """Starts the server; ``block=False`` returns at once (tests). Returns ``(app, local_url, share_url)``."""
    return demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=quiet,
                       show_error=True, ssr_mode=False, allowed_paths=[str(demo.surf_store.root)],
                       footer_links=["gradio"], inbrowser=False, share=False)
