"""Accelerate-based refiner trainer (CPU, one GPU, DDP and FSDP through ``accelerate launch``).

Loss (flow mapping): ``z_t = (1 - t) z_hr + t z_lr``, target ``v = z_lr - z_hr``, MSE on the
model output ``model(hidden_states=z_t, timestep=1000 t, encoder_hidden_states=text)``.

Reproducibility: the data of optimizer step ``s`` and all per-sample randomness (latent
degradation, t) are pure functions of ``(seed, s, sample position)``; with the weights, optimizer,
schedule and EMA restored from an atomic checkpoint, ``--resume`` continues bit-exactly on CPU,
and N processes with local batch B/N see the same global batch as one process with batch B.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from surf_video.train.checkpoint import (
    EMA,
    finalize_checkpoint,
    latest_checkpoint,
    prune_checkpoints,
    read_trainer_state,
)
from surf_video.train.config import TrainConfig
from surf_video.train.data import StepBatchSampler, collate, derive_seed
from surf_video.train.degrade import degrade_latents
from surf_video.train.distributed import (enable_fsdp_on_cpu, full_tensors, is_fsdp, reshard, save_plain_model,
                                          shard_like)
from surf_video.train.latents import build_encoder
from surf_video.train.parts import build_dataset, build_model, flow_mapping_loss, lr_lambda, refine, sample_timesteps
from surf_video.train.text import build_text_encoder

# build_model ... refine live in surf_video.train.parts; they stay importable from here as before
__all__ = ["TrainingDiverged", "TrainResult", "build_model", "build_dataset", "sample_timesteps",
           "flow_mapping_loss", "refine", "Trainer"]

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss (or gradient norm) became NaN/inf; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    step: int
    last_loss: float
    checkpoint: str | None
    steps_per_s: float


def _reset_accelerate_state_if(mixed_precision: str) -> None:
    """accelerate keeps one process-wide state and refuses a second Accelerator with another
    precision; in a single process (tests, notebooks, several trainings in a row) start afresh."""
    from accelerate.state import AcceleratorState

    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=True)


class Trainer:
    """Trains a refiner from a :class:`TrainConfig`.

    Args:
        cfg: the recipe.
        sample_fn: a procedural ``sample(index, rng) -> (hr, lr, caption)`` (overrides ``data``).
        accelerator: an ``accelerate.Accelerator`` (default: built from ``cfg``).
        on_step_end: called with the global step after each optimizer step (tests use it to
            simulate a crash).
        text_encoder: ``f(captions, device=None) -> [B, L, D]`` (overrides ``text``).
    """

    def __init__(self, cfg: TrainConfig, sample_fn: Callable | None = None, accelerator=None,
                 on_step_end: Callable[[int], None] | None = None, text_encoder: Callable | None = None):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.cfg = cfg
        # On a CPU-only host launched with several processes (torchrun / accelerate launch --multi_gpu),
        # accelerate only picks gloo multi-CPU when told cpu=True.
        single = int(os.environ.get("WORLD_SIZE", "1")) == 1
        cpu = not torch.cuda.is_available() and not single
        if accelerator is None and single:
            _reset_accelerate_state_if(cfg.mixed_precision)
        self.acc = accelerator or Accelerator(mixed_precision=cfg.mixed_precision, cpu=cpu,
                                              gradient_accumulation_steps=cfg.optim.gradient_accumulation_steps)
        if cpu:
            enable_fsdp_on_cpu(self.acc)  # accelerate would silently run DDP instead
        self.fsdp = is_fsdp(self.acc)
        if cfg.cpu_threads is not None and self.acc.device.type == "cpu":
            # tiny models on shared CPUs: intra-op threads cost more than they give
            torch.set_num_threads(cfg.cpu_threads)
        self.out = Path(cfg.output_dir)
        self.ckpt_dir = self.out / "checkpoints"
        self.on_step_end = on_step_end
        set_seed(cfg.seed)  # same initial weights on every process
        model = build_model(cfg.model)
        self.text_dim = int(model.config.text_dim)
        o = cfg.optim
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, eps=o.eps)
        # Not passed to accelerator.prepare: its wrapper steps the schedule once per process.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(o.warmup_steps, cfg.total_steps, o.schedule))
        self._model_cls, self._model_config = type(model), model.config
        self.model, self.optimizer = self.acc.prepare(model, optimizer)
        # after prepare: under FSDP the EMA keeps fp32 copies of this rank's shards only
        self.ema = EMA(self.acc.unwrap_model(self.model), o.ema_decay) if o.ema_decay is not None else None
        self.dataset = build_dataset(cfg, sample_fn)
        self.latent_data = cfg.data.type == "latents"
        enc_needed = not self.latent_data or cfg.validation.every > 0
        self.encoder = build_encoder(cfg.encoder, self.acc.device) if enc_needed else None
        self.text_encoder = text_encoder or build_text_encoder(cfg.text, self.text_dim)
        self.global_batch = cfg.batch_size * self.acc.num_processes
        self.step = 0
        self._csv_path = self.out / "logs" / "train.csv"
        self._tb = None

    # ------------------------------------------------------------------ batches
    def _latents(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dev = self.acc.device
        if self.latent_data:
            z_hr, z_lr = batch["z_hr"].to(dev), batch["z_lr"].to(dev)
        else:
            z_hr = self.encoder.encode(batch["hr"].to(dev)).float()
            z_lr = self.encoder.encode(batch["lr"].to(dev)).float()
        if "text" in batch:
            text = batch["text"].to(dev).float()
        elif self.text_encoder is not None:
            text = self.text_encoder(batch["caption"], device=dev).float()
        else:
            raise ValueError("text.type is 'cached' but the data has no cached text embeddings")
        return z_hr, z_lr, text

    def _perturb(self, z_hr, z_lr, sample_ids) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample latent degradation and t, seeded by the sample's global position."""
        lrs, ts = [], []
        for b, sid in enumerate(sample_ids.tolist()):
            g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, sid, 11))
            lrs.append(degrade_latents(z_lr[b], z_hr[b], self.cfg.degrade, g))
            ts.append(sample_timesteps(1, self.cfg.timestep, g))
        return torch.stack(lrs).to(z_lr), torch.cat(ts).to(z_lr.device)

    def _phase_clip(self, phase) -> None:
        d = self.cfg.data
        frames = phase.num_frames or d.num_frames
        size = phase.size or d.size
        if self.latent_data:
            self.dataset.set_num_frames(phase.num_frames)  # None: the cached length
        else:
            self.dataset.set_clip(frames, size)

    def _loader(self, start_micro: int, num_micro: int):
        sampler = StepBatchSampler(len(self.dataset), self.cfg.batch_size, self.acc.process_index,
                                   self.acc.num_processes, self.cfg.seed, start_micro, num_micro)
        nw = self.cfg.data.num_workers
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=sampler, collate_fn=collate, num_workers=nw,
                                           persistent_workers=False)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        name = f"step-{self.step:08d}"
        tmp, final = self.ckpt_dir / f".tmp-{name}", self.ckpt_dir / name
        if self.acc.is_main_process:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        self.acc.wait_for_everyone()
        # FSDP: sharded model + optimizer state (torch.distributed.checkpoint, every rank writes its shard)
        self.acc.save_state(str(tmp), safe_serialization=True)
        gather_ema = self.ema is not None and (self.fsdp or self.acc.is_main_process)
        ema = self._ema_full() if gather_ema else None  # under FSDP a gather: every rank takes part
        self.acc.wait_for_everyone()  # every rank's files (RNG state, shards) are written before the rename
        if self.acc.is_main_process:
            if ema is not None:
                save_file(ema, str(tmp / "ema.safetensors"))
            state = {"step": self.step, "scheduler": self.scheduler.state_dict(), "global_batch": self.global_batch,
                     "num_processes": self.acc.num_processes, "seed": self.cfg.seed,
                     "ema_num_updates": self.ema.num_updates if self.ema else None, "time": time.time()}
            finalize_checkpoint(tmp, final, state)
            prune_checkpoints(self.ckpt_dir, self.cfg.checkpoint.keep)
        self.acc.wait_for_everyone()
        return final

    def load_checkpoint(self, ckpt: Path) -> None:
        state = read_trainer_state(ckpt)
        if state["global_batch"] != self.global_batch:
            logger.warning("resuming with global batch %d (checkpoint used %d): the data order changes",
                           self.global_batch, state["global_batch"])
        self.acc.load_state(str(ckpt))
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            if not (ckpt / "ema.safetensors").is_file():
                raise ValueError(f"checkpoint {ckpt} has no EMA weights but optim.ema_decay is set")
            full = load_file(str(ckpt / "ema.safetensors"))
            self.ema.shadow = {k: shard_like(full[k].float(), v) for k, v in self.ema.shadow.items()}
            self.ema.num_updates = state["ema_num_updates"]
        self.step = int(state["step"])

    # ------------------------------------------------------------------ logging
    def _log(self, row: dict) -> None:
        if not self.acc.is_main_process:
            return
        self._csv_path.parent.mkdir(parents=True, exist_ok=True)
        new = not self._csv_path.exists()
        with open(self._csv_path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if self.cfg.logging.tensorboard:
            if self._tb is None:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:  # tensorboard is the optional [train] extra
                    logger.warning("tensorboard is not installed (pip install surf-video[train]); CSV log only")
                    self.cfg.logging.tensorboard = False
                    return
                self._tb = SummaryWriter(str(self.out / "logs" / "tensorboard"))
            for k in ("loss", "lr", "grad_norm", "samples_per_s"):
                self._tb.add_scalar(f"train/{k}", row[k], row["step"])

    def _truncate_log(self) -> None:
        """After a resume, drop log rows of steps the checkpoint does not contain."""
        if not self.acc.is_main_process or not self._csv_path.exists():
            return
        with open(self._csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        keep = [r for r in rows if int(r["step"]) <= self.step]
        if len(keep) != len(rows) and rows:
            with open(self._csv_path, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(keep)

    def plot_loss(self) -> Path | None:
        if not self.acc.is_main_process or not self._csv_path.exists():
            return None
        from surf_video.train.plots import plot_loss_curve

        return plot_loss_curve(self._csv_path, self.out / "loss.png")

    # ------------------------------------------------------------------ training
    def train(self, max_steps: int | None = None, resume: bool = False) -> TrainResult:
        """Train until ``max_steps`` (global optimizer steps, default all phases).

        Raises:
            TrainingDiverged: on a NaN/inf loss or gradient norm (no step is applied).
        """
        cfg = self.cfg
        total = cfg.total_steps if max_steps is None else min(max_steps, cfg.total_steps)
        if resume:
            ck = latest_checkpoint(self.ckpt_dir)
            if ck is None:
                logger.warning("--resume: no complete checkpoint in %s, starting from scratch", self.ckpt_dir)
            else:
                self.load_checkpoint(ck)
                logger.info("resumed from %s (step %d)", ck, self.step)
        self._truncate_log()
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        accum = cfg.optim.gradient_accumulation_steps
        bar = tqdm(total=total, initial=self.step, desc="train", disable=not self.acc.is_local_main_process)
        last_loss, t0, start_step, last_ck = float("nan"), time.time(), self.step, None
        tick, tick_step = time.time(), self.step
        phase_end = 0
        for phase in cfg.phases:
            phase_end += phase.steps
            if self.step >= phase_end or self.step >= total:
                continue
            self._phase_clip(phase)
            n_steps = min(phase_end, total) - self.step
            losses = []
            for i, batch in enumerate(self._loader(self.step * accum, n_steps * accum)):
                z_hr, z_lr, text = self._latents(batch)
                z_lr, t = self._perturb(z_hr, z_lr, batch["sample_id"])
                with self.acc.accumulate(self.model):
                    with self.acc.autocast():
                        loss = flow_mapping_loss(self.model, z_hr, z_lr, text, t)
                    all_loss = self.acc.gather(loss.detach()[None])
                    if not torch.isfinite(all_loss).all():
                        raise TrainingDiverged(self._diverged_msg("loss", all_loss))
                    losses.append(all_loss.mean().item())
                    self.acc.backward(loss)
                    grad_norm = torch.tensor(0.0)
                    if self.acc.sync_gradients:
                        if cfg.optim.max_grad_norm is not None:
                            grad_norm = self.acc.clip_grad_norm_(self.model.parameters(), cfg.optim.max_grad_norm)
                        else:
                            grad_norm = self.acc.clip_grad_norm_(self.model.parameters(), float("inf"))
                        if hasattr(grad_norm, "full_tensor"):  # FSDP2: a replicated DTensor
                            grad_norm = grad_norm.full_tensor()
                        # under fp16 the grad scaler skips overflowing steps itself
                        if cfg.mixed_precision != "fp16" and not torch.isfinite(torch.as_tensor(grad_norm)).all():
                            raise TrainingDiverged(self._diverged_msg("gradient norm", grad_norm))
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                if not self.acc.sync_gradients:
                    continue
                self.scheduler.step()
                if self.ema is not None:
                    self.ema.update(self.acc.unwrap_model(self.model))
                self.step += 1
                last_loss = sum(losses) / len(losses)
                losses = []
                bar.update(1)
                bar.set_postfix(loss=f"{last_loss:.4g}", phase=phase.name or "")
                if self.step % cfg.logging.every == 0 or self.step == total:
                    now = time.time()
                    sps = (self.step - tick_step) * self.global_batch * accum / max(now - tick, 1e-9)
                    tick, tick_step = now, self.step
                    self._log({"step": self.step, "phase": phase.name or str(cfg.phases.index(phase)),
                               "loss": last_loss, "lr": self.scheduler.get_last_lr()[0],
                               "grad_norm": float(grad_norm), "samples_per_s": sps, "elapsed_s": now - t0})
                if self.step % cfg.checkpoint.every == 0 or self.step == total:
                    last_ck = self.save_checkpoint()
                if cfg.validation.every and self.step % cfg.validation.every == 0:
                    self.validate()
                if self.acc.is_main_process and cfg.logging.plot_every and self.step % cfg.logging.plot_every == 0:
                    self.plot_loss()
                if self.on_step_end is not None:
                    self.on_step_end(self.step)
        bar.close()
        self.plot_loss()
        elapsed = time.time() - t0
        if self._tb is not None:
            self._tb.flush()
        self.acc.wait_for_everyone()
        return TrainResult(self.step, last_loss, str(last_ck) if last_ck else None,
                           (self.step - start_step) / max(elapsed, 1e-9))

    def _diverged_msg(self, what: str, value) -> str:
        ck = latest_checkpoint(self.ckpt_dir)
        where = f"the last good checkpoint is {ck}" if ck else "no checkpoint was written yet"
        return (f"non-finite {what} ({value.tolist() if hasattr(value, 'tolist') else value}) at step {self.step + 1}; "
                f"training stopped without applying the step; {where}. Lower optim.lr, enable optim.max_grad_norm "
                f"or use mixed_precision 'bf16' instead of 'fp16'.")

    # ------------------------------------------------------------------ validation and export
    @torch.no_grad()
    def validate(self) -> dict | None:
        """Refine fixed clips with the (EMA) weights; write ``lr | refined | hr`` videos and the MSE.

        Under FSDP every rank runs the (sharded) model on the same clips; the main process writes."""
        if not self.acc.is_main_process and not self.fsdp:
            return None
        from surf_video.train.plots import write_validation_video

        cfg = self.cfg.validation
        n = min(cfg.num_samples, len(self.dataset))
        batch = collate([self.dataset[(i, 0, -1 - i)] for i in range(n)])
        z_hr, z_lr, text = self._latents(batch)
        z_lr, _ = self._perturb(z_hr, z_lr, torch.arange(n) + 10**12)
        model = self.acc.unwrap_model(self.model)
        backup = None
        if self.ema is not None:
            backup = {k: p.detach().clone() for k, p in model.named_parameters()}
            self.ema.copy_to(model)
        model.eval()
        with self.acc.autocast():
            z = refine(model, z_lr, text, cfg.num_steps)
        model.train()
        if self.fsdp:
            reshard(model)  # the root stays unsharded after a forward without backward
        if backup is not None:
            for k, p in model.named_parameters():
                p.copy_(backup[k])
        if not self.acc.is_main_process:
            return None
        mse_refined = F.mse_loss(z.float(), z_hr).item()
        mse_input = F.mse_loss(z_lr, z_hr).item()
        out_dir = self.out / "samples"
        out_dir.mkdir(parents=True, exist_ok=True)
        if self.encoder is not None and z.shape[1] == getattr(self.encoder, "latent_channels", z.shape[1]):
            vids = [self.encoder.decode(x.float()).cpu() for x in (z_lr, z, z_hr)]
            for i in range(n):
                write_validation_video(out_dir / f"step-{self.step:08d}_{i}.mp4", [v[i] for v in vids], cfg.fps)
        row = {"step": self.step, "mse_refined": mse_refined, "mse_input": mse_input}
        with open(out_dir / "validation.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self._tb is not None:
            self._tb.add_scalar("val/mse_refined", mse_refined, self.step)
            self._tb.add_scalar("val/mse_input", mse_input, self.step)
        return row

    def _ema_full(self) -> dict[str, torch.Tensor]:
        """The EMA weights in full on the CPU (under FSDP a gather: call on every rank)."""
        return full_tensors(self.ema.shadow)

    def export(self, path: str | Path | None = None) -> Path:
        """``save_pretrained`` the trained weights (and the EMA weights to ``PATH-ema``).

        Under FSDP the full weights are gathered (every rank takes part) and rank 0 writes them."""
        path = Path(path or self.out / "final")
        self.acc.wait_for_everyone()
        if self.fsdp:
            weights = self.acc.get_state_dict(self.model)  # full, on rank 0 (on the CPU)
            ema = self._ema_full() if self.ema is not None else None
            if self.acc.is_main_process:
                save_plain_model(self._model_cls, self._model_config, weights, path)
                if ema is not None:  # the EMA covers the trainable parameters; buffers as trained
                    save_plain_model(self._model_cls, self._model_config, {**weights, **ema}, str(path) + "-ema")
            self.acc.wait_for_everyone()
            return path
        model = self.acc.unwrap_model(self.model)
        if self.acc.is_main_process:
            model.save_pretrained(str(path), safe_serialization=True)
            if self.ema is not None:
                backup = {k: p.detach().clone() for k, p in model.named_parameters()}
                self.ema.copy_to(model)
                model.save_pretrained(str(path) + "-ema", safe_serialization=True)
                with torch.no_grad():
                    for k, p in model.named_parameters():
                        p.copy_(backup[k])
        self.acc.wait_for_everyone()
        return path
