"""Two CPU processes (DDP over gloo, through accelerate launch) match one process with the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from surf_video.train.config import load_config
from surf_video.train.trainer import Trainer

from train_helpers import tiny_recipe

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, torch
sys.path.insert(0, {helpers!r})
torch.set_num_threads(1)
from surf_video.train.config import load_config
from surf_video.train.trainer import Trainer
from train_helpers import tiny_recipe
trainer = Trainer(load_config(tiny_recipe({out!r}, batch_size=2, phases=[{{"steps": 3}}], checkpoint={{"every": 3}})))
result = trainer.train()
if trainer.acc.is_main_process:
    print("PROCESSES", trainer.acc.num_processes, "LOSS", result.last_loss)
"""


def test_two_process_ddp_matches_single_process(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(helpers=str(Path(__file__).parent), out=str(tmp_path / "ddp")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533", str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROCESSES")][0]
    assert line.split()[1] == "2"
    ddp_loss = float(line.split()[3])

    single = Trainer(load_config(tiny_recipe(tmp_path / "one", batch_size=4, phases=[{"steps": 3}],
                                             checkpoint={"every": 3})))
    result = single.train()
    assert abs(result.last_loss - ddp_loss) < 1e-5
    a = load_file(str(tmp_path / "ddp" / "checkpoints" / "step-00000003" / "model.safetensors"))
    b = load_file(str(tmp_path / "one" / "checkpoints" / "step-00000003" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    # and the weights moved: the comparison is not trivially between two untouched models
    init = Trainer(load_config(tiny_recipe(tmp_path / "init", batch_size=4)))
    w0 = init.acc.unwrap_model(init.model).state_dict()
    assert any((w0[k] - b[k]).abs().max() > 1e-4 for k in b)
