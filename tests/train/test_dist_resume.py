"""Two CPU processes (gloo) launched with the shipped accelerate configs: a run killed between
checkpoints and resumed with ``resume=True`` ends bit-exactly where an uninterrupted run ends
(DDP and FSDP2), and FSDP matches one process with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from surf_video.train.config import load_config
from surf_video.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).parent / "dist_worker.py"
sys.path.insert(0, str(Path(__file__).parent))
from dist_worker import recipe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(config: str, *args) -> tuple[int, list[dict], str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file",
           str(ROOT / "configs" / "refiner" / "accelerate" / config), "--mixed_precision", "no",
           "--main_process_port", str(_free_port()), str(WORKER), *map(str, args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    results = [json.loads(ln[7:]) for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    return proc.returncode, results, proc.stderr[-4000:]


def _weights(folder: Path) -> dict:
    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


def _losses(out: Path) -> list[str]:
    rows = (out / "logs" / "train.csv").read_text().splitlines()[1:]
    return [",".join(r.split(",")[:5]) for r in rows]  # step, phase, loss, lr, grad_norm (not timings)


@pytest.mark.parametrize("config", ["ddp2.yaml", "fsdp2.yaml"])
def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, config):
    run, ref = tmp_path / "run", tmp_path / "ref"
    rc, results, err = _launch(config, run, "--kill-at", 5)
    assert rc != 0 and not results, err  # every rank died right after step 5, before finishing
    cks = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert cks == ["step-00000002", "step-00000004"], cks
    fsdp = config.startswith("fsdp")
    # FSDP checkpoints are sharded (torch.distributed.checkpoint), DDP ones a plain safetensors file
    assert (run / "checkpoints" / "step-00000004" / ("pytorch_model_fsdp_0" if fsdp else "model.safetensors")).exists()

    rc, results, err = _launch(config, run, "--resume", "--reference", ref)
    assert rc == 0, err
    resumed, uninterrupted = results
    assert resumed["processes"] == 2 and resumed["fsdp"] is fsdp, resumed
    assert resumed["step"] == uninterrupted["step"] == 6
    assert resumed["loss"] == uninterrupted["loss"]
    assert _losses(run) == _losses(ref)  # the log lost the killed step 5 and has it once, re-done
    for sub in ("final", "final-ema"):
        a, b = _weights(run / sub), _weights(ref / sub)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (sub, k)
    assert json.loads((run / "final" / "config.json").read_text())["_class_name"] == "RefinerTransformer3DModel"
    assert (run / "samples" / "validation.jsonl").is_file()

    if fsdp:  # sharded training computes what one process with the same global batch computes
        single = Trainer(load_config(recipe(tmp_path / "one") | {"batch_size": 4}))
        result = single.train()
        single.export()
        assert abs(result.last_loss - resumed["loss"]) < 1e-5
        a, b = _weights(run / "final"), _weights(tmp_path / "one" / "final")
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
