#!/usr/bin/env bash
# Session 8: sampling sweep of the base in the tree's assets, adherence only (no training), on development prompts.
# Usage (repo root, diffusers wheel in .whl_mini/): bash benchmarks/results/mini_v6/sweep.sh OUTDIR "NAME:ARGS ..."
#   each spec: a name and `surf mini eval` arguments joined by commas, e.g. "g4d1:--guidance,4,--prompt-offset,1000"
# Defaults of `surf mini eval`: 100 prompts, 128 px, CFG 5, 40 steps, flow shift 3. The evals stop after 540 s,
# and whatever finished comes back in sweep.tgz.
OUT=$1; mkdir -p $OUT/j
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_mini/*.whl || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
sha1sum src/surf_video/assets/surf-mini/transformer/diffusion_pytorch_model.safetensors
run_all() {
  for spec in $1; do
    n=${spec%%:*}; args=${spec#*:}
    python3 -m surf_video.cli.main mini eval --device cuda ${args//,/ } --out $OUT/j/$n.json > /dev/null 2>> $OUT/j/log.txt
    python3 -c "import json; print('$n', json.load(open('$OUT/j/$n.json'))['adherence'])"
  done
}
export -f run_all; export OUT
timeout ${EVAL_SECONDS:-540} bash -c "run_all '$2'"
(cd $OUT && tar czf sweep.tgz j && rm -rf j)
