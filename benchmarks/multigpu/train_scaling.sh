#!/usr/bin/env bash
# Refiner training over 1 and 2 GPUs (issue 8): throughput + memory, convergence, kill/resume.
#
# On a 2x H100 host, from the repository root, with the wheels this repo lacks there in .whl/
# (diffusers at least; the script checks the imports first):
#     bash benchmarks/multigpu/train_scaling.sh            # writes 4 files to $OUT, ~6-7 min
# CPU rehearsal (2 gloo processes, tiny shapes, ~3 min on 2 cores):
#     CPU=1 OUT=/tmp/ts PY=.venv/bin/python bash benchmarks/multigpu/train_scaling.sh
#
# (a) throughput: refiner-1b shapes (random init), 21 frames at 720p from a random latent cache,
#     bf16, gradient checkpointing, EMA: 1 GPU x grad-accum 2, DDP 2x1, FSDP2 2x1 (global batch 2);
#     samples/s, scaling efficiency, peak memory per rank.
# (b) convergence: refiner-tiny on the procedural world, 300 steps, global batch 8, 1 GPU / DDP /
#     FSDP: loss curves (convergence.csv, convergence.png) and their differences.
# (c) kill/resume: FSDP 2 GPUs, 100 steps, killed (os._exit on both ranks) after step 60, resumed
#     from the step-50 checkpoint; compared with an uninterrupted run (losses, final weights).
# Output ($OUT): train_scaling.json (every number and the exact launch commands), convergence.csv,
# convergence.png, train_scaling.log. Every launch has a timeout inside a global deadline
# (BUDGET_S, default 400 s after the install), so the whole run stays under ~8 minutes.

# NVLink multicast must stay off on the shared hosts
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

set -u
START=$(date +%s)
PY=${PY:-python3}
CPU=${CPU:-0}
OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
LOG="$OUT/train_scaling.log"
: > "$LOG"
say() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }

if [ "$CPU" != 1 ]; then
    if ls .whl/*.whl > /dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
            || { say "wheel install failed"; exit 1; }
        export PYTHONPATH=/tmp/site:src
    else
        say "no .whl/*.whl: using the installed packages"
        export PYTHONPATH=src
    fi
else
    export PYTHONPATH=src
fi
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export CUBLAS_WORKSPACE_CONFIG=:4096:8   # deterministic cuBLAS for the kill/resume comparison

$PY - <<'EOF' 2>&1 | tee -a "$LOG" || { say "missing packages: stop"; exit 1; }
import importlib, sys
missing = []
for m in ("torch", "accelerate", "diffusers", "safetensors", "yaml", "tqdm", "numpy", "PIL", "matplotlib",
          "surf_video.train.trainer", "surf_video.models.refiner", "surf_video.world.render"):
    try:
        importlib.import_module(m)
    except Exception as e:  # noqa: BLE001 - report every missing piece at once
        missing.append(f"{m}: {type(e).__name__}: {e}")
import torch, accelerate
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "gpus", torch.cuda.device_count(),
      "accelerate", accelerate.__version__)
if missing:
    print("MISSING", *missing, sep="\n  ")
    sys.exit(1)
EOF

if [ "$CPU" = 1 ]; then
    TINY=--tiny; MP=no; BUDGET_S=${BUDGET_S:-900}
    THR_STEPS=3; THR_WARM=1; CONV_STEPS=20; KR_STEPS=12; KR_CKPT=4; KR_KILL=7; GB=4
    MAX1=0; MAX2=0               # no early stop of the timed steps
    ONE=""                       # one process
else
    TINY=""; MP=bf16; BUDGET_S=${BUDGET_S:-400}
    THR_STEPS=${THR_STEPS:-15}; THR_WARM=${THR_WARM:-3}; CONV_STEPS=${CONV_STEPS:-300}
    KR_STEPS=100; KR_CKPT=25; KR_KILL=60; GB=8
    MAX1=${MAX1:-100}; MAX2=${MAX2:-60}   # seconds of timed steps at most (1 GPU / 2 GPUs), if slower than planned
    ONE="CUDA_VISIBLE_DEVICES=0"
fi
DEADLINE=$(( $(date +%s) + BUDGET_S ))
WORK=${WORK:-/tmp/train_scaling}
rm -rf "$WORK"; mkdir -p "$WORK"
LAUNCH="$PY -m accelerate.commands.launch"
DDP="--config_file configs/refiner/accelerate/ddp2.yaml"
FSDP="--config_file configs/refiner/accelerate/fsdp2.yaml"
SINGLE="--num_processes 1 --num_machines 1 --dynamo_backend no"
H=benchmarks/multigpu/train_scaling.py
PORT=29611

# run NAME CAP_S ENV LAUNCH_ARGS -- SCRIPT_ARGS: one accelerate launch, its command, rc and wall time
# recorded in $WORK/commands.jsonl, its output in $WORK/NAME.log (tail copied into the log)
run() {
    local name=$1 cap=$2 envs=$3; shift 3
    local left=$(( DEADLINE - $(date +%s) ))
    local t=$(( cap < left ? cap : left ))
    if [ "$t" -lt 20 ]; then
        say "SKIP $name: ${left}s left before the deadline"
        echo "{\"name\": \"$name\", \"skipped\": \"time budget\"}" >> "$WORK/commands.jsonl"
        return 0
    fi
    PORT=$((PORT + 1))
    local cmd="$envs $LAUNCH --main_process_port $PORT $* "
    say "RUN  $name (timeout ${t}s): $cmd"
    local t0=$(date +%s)
    env $envs timeout -k 15 "$t" $LAUNCH --main_process_port $PORT "$@" > "$WORK/$name.log" 2>&1
    local rc=$?
    local dt=$(( $(date +%s) - t0 ))
    grep -v -i -e "warn" -e "it/s" -e "s/it" "$WORK/$name.log" | tail -n 25 >> "$LOG"
    if [ "$rc" != 0 ]; then  # the launcher's summary hides the cause: keep the first tracebacks too
        grep -v -i "warn" "$WORK/$name.log" | grep -B 3 -A 25 -m 2 "^\(\[rank[0-9]*\]: \)\?Traceback" | head -n 80 >> "$LOG"
    fi
    eval "RC_${name//-/_}=$rc"
    say "DONE $name rc=$rc in ${dt}s"
    $PY -c "import json,sys; print(json.dumps({'name': sys.argv[1], 'command': sys.argv[2].strip(), 'rc': int(sys.argv[3]), 'wall_s': int(sys.argv[4]), 'timeout_s': int(sys.argv[5])}))" \
        "$name" "$cmd" "$rc" "$dt" "$t" >> "$WORK/commands.jsonl"
}

# (a) throughput
$PY $H latents "$WORK/latents" $TINY >> "$LOG" 2>&1
TA="--latents $WORK/latents --steps $THR_STEPS --warmup $THR_WARM $TINY"
# PARTS: which parts to run (default all): e.g. PARTS="thr-fsdp conv kr" after a partial first run
PARTS=${PARTS:-"thr-1gpu thr-ddp thr-fsdp conv kr"}
want() { case " $PARTS " in *" $1 "*) return 0;; *) return 1;; esac; }
want thr-1gpu && run thr-1gpu 170 "$ONE" $SINGLE --mixed_precision $MP $H throughput "$WORK" thr-1gpu --accum 2 --max-s $MAX1 $TA
want thr-ddp && run thr-ddp  120 ""     $DDP    --mixed_precision $MP $H throughput "$WORK" thr-ddp  --accum 1 --max-s $MAX2 $TA
want thr-fsdp && run thr-fsdp 120 ""     $FSDP   --mixed_precision $MP $H throughput "$WORK" thr-fsdp --accum 1 --max-s $MAX2 $TA

# (b) convergence (fp32: the tiny recipe's precision)
CA="--steps $CONV_STEPS --global-batch $GB $TINY"
want conv && run conv-1gpu 80 "$ONE" $SINGLE --mixed_precision no $H convergence "$WORK" conv-1gpu $CA
want conv && run conv-ddp  80 ""     $DDP    --mixed_precision no $H convergence "$WORK" conv-ddp  $CA
want conv && run conv-fsdp 80 ""     $FSDP   --mixed_precision no $H convergence "$WORK" conv-fsdp $CA

# (c) kill/resume (FSDP): the first launch is meant to die with rc 3 after step $KR_KILL
KA="--steps $KR_STEPS --global-batch $GB --ckpt-every $KR_CKPT $TINY"
# FSDP unless its throughput run failed on this host (then DDP, so the resume is still shown)
KR=$FSDP; [ "${RC_thr_fsdp:-0}" != 0 ] && { KR=$DDP; say "kill/resume with DDP: the FSDP run failed"; }
want kr && run kr-kill   60 "" $KR --mixed_precision no $H killresume "$WORK" kr-run $KA --kill-at $KR_KILL
ls "$WORK/kr-run/checkpoints" > "$WORK/kr-kill-checkpoints.txt" 2>/dev/null
grep -c "exitcode *: 3 (pid" "$WORK/kr-kill.log" > "$WORK/kr-kill-exit3.txt"
want kr && run kr-resume 90 "" $KR --mixed_precision no $H killresume "$WORK" kr-run $KA --resume --reference kr-ref

$PY $H report "$WORK" "$OUT" >> "$LOG" 2>&1 || say "report failed"
say "total $(( $(date +%s) - START ))s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
