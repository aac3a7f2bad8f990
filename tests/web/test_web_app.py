"""The served app without a browser (gradio_client): sessions, concurrency, errors shown as messages."""

import concurrent.futures as cf
import time
from pathlib import Path
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from surf_video.io.video import read_video


def preview(client, prompt, seed, num, switch="3", renoise="flow"):
    out = client.predict(prompt, "", seed, num, switch, renoise, api_name="/preview")
    status, pick, *videos = out
    return status, [c[1] for c in pick["choices"]], [v for v in videos if v.get("visible")]


def test_two_concurrent_sessions_each_get_their_own_previews(server):
    url, demo = server
    store = demo.surf_store
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    assert a.session_hash != b.session_hash
    with cf.ThreadPoolExecutor(2) as ex:
        fa = ex.submit(preview, a, "a red circle moving right", 1, 2)
        fb = ex.submit(preview, b, "a blue square moving left", 10, 3, "auto", "snr")
        (sa, ids_a, va), (sb, ids_b, vb) = fa.result(timeout=120), fb.result(timeout=120)
    assert sa.startswith("2 preview(s)") and sb.startswith("3 preview(s)")
    assert len(ids_a) == len(va) == 2 and len(ids_b) == len(vb) == 3
    assert [v["label"] for v in vb] == ["Preview 1 · seed 10", "Preview 2 · seed 11", "Preview 3 · seed 12"]
    # each session's files are in its own folder, and only there
    assert sorted(p.stem for p in (store.root / a.session_hash).glob("*.safetensors")) == sorted(ids_a)
    assert sorted(p.stem for p in (store.root / b.session_hash).glob("*.safetensors")) == sorted(ids_b)
    # a session refines its own preview, never the other's
    video, _, status = b.predict(ids_b[2], "32x32", 2, api_name="/refine")
    assert "seed 12" in status and read_video(video).shape == (5, 32, 32, 3)
    with pytest.raises(AppError, match="does not belong to this page's session"):
        a.predict(ids_b[0], "32x32", 2, api_name="/refine")
    # a second click of the same session keeps its first batch (the page shows the newest one)
    _, ids_a2, _ = preview(a, "a red circle moving right", 5, 1)
    video, _, _ = a.predict(ids_a[1], "48x48", 2, api_name="/refine")
    assert read_video(video).shape == (5, 48, 48, 3) and ids_a2[0] not in ids_a


def test_bad_input_gets_a_message_not_a_trace(server):
    url, demo = server
    c = Client(url, verbose=False)
    with pytest.raises(AppError, match="Prompt: type a description"):
        preview(c, "   ", 0, 2)
    with pytest.raises(AppError, match="make previews and pick one first"):
        c.predict(None, "32x32", 2, api_name="/refine")
    with pytest.raises(AppError, match="does not belong"):  # an id from before a restart: this session never had it
        c.predict("0123abcd-1", "32x32", 2, api_name="/refine")
    _, ids, _ = preview(c, "a red circle", 0, 1)
    demo.surf_store.remove_session(c.session_hash)  # the files are gone, as after a restart with a new store
    with pytest.raises(AppError, match="no longer stored.*make new previews"):
        c.predict(ids[0], "32x32", 2, api_name="/refine")
    with pytest.raises(AppError, match="Number of previews: at most 4"):
        preview(c, "a red circle", 0, 9)
    with pytest.raises(AppError, match="Switch step: 'auto' or a whole number from 0 to 8"):
        preview(c, "a red circle", 0, 2, "99")
    status, _, _ = preview(c, "a red circle", 0, 1, "8")  # all 8 steps at the base size: the preview is 32x32
    assert status.startswith("1 preview(s) of 32x32, 5 frames, switch step [8]")
    _, ids, _ = preview(c, "a red circle", 0, 1)
    with pytest.raises(AppError, match="Target size: '40x40' is not supported.*32x32, 48x48, 64x64"):
        c.predict(ids[0], "40x40", 2, api_name="/refine")


def test_cancel_stops_the_running_preview_and_frees_the_model(server, tiny_model):
    url, _ = server
    c = Client(url, verbose=False)
    steps = tiny_model.call_defaults["num_inference_steps"]
    tiny_model.call_defaults["num_inference_steps"] = 5000  # minutes of work unless cancelled
    try:
        job = c.submit("a red circle", "", 0, 1, "3", "flow", api_name="/preview")
        t0 = time.monotonic()
        while not tiny_model.lock.locked() and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        assert tiny_model.lock.locked()
        Client(url, verbose=False).predict(api_name="/cancel")  # another session's Cancel leaves this job alone
        time.sleep(1.5)  # dozens of steps
        assert tiny_model.lock.locked() and not job.done()
        t1 = time.monotonic()
        c.predict(api_name="/cancel")
        assert tiny_model.lock.acquire(timeout=30)  # the job stopped after its current step
        tiny_model.lock.release()
        assert time.monotonic() - t1 < 30
        with pytest.raises(Exception, match="cancelled|Cancelled"):
            job.result(timeout=30)
    finally:
        tiny_model.call_defaults["num_inference_steps"] = steps
    # the session works on after a cancel
    status, ids, _ = preview(c, "a red circle", 0, 1)
    assert status.startswith("1 preview(s)") and len(ids) == 1


def test_cli_serves_the_app(tmp_path):
    import os
    import subprocess
    import sys
    import urllib.request

    from webdemo_browser import free_port

    from surf_video.cli.main import main

    assert main(["web", "--port", "70000"]) == 2  # bad input: one line, no server
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "surf_video.cli.main", "web", "--base", "tiny-wan", "--port",
                             str(port), "--store", str(tmp_path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.monotonic() + 120, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert "SURF video demo" in page or "gradio" in page.lower(), proc.poll()
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        status, ids, _ = preview(c, "a red circle", 0, 1)
        assert status.startswith("1 preview(s) of 16x16")
        assert (tmp_path / c.session_hash / f"{ids[0]}.safetensors").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
