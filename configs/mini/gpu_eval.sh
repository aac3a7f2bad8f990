#!/usr/bin/env bash
# Prompt adherence of SURF-Mini candidates on the GPU, each a copy of the shipped pipeline with some parts swapped.
# Usage (repo root, diffusers wheel in .whl_mini/): bash configs/mini/gpu_eval.sh OUTDIR SPEC...
#   SPEC = name:parts:size:guidance:offset, parts = comma-separated folders of .mini_ckpt/cand (e.g. vae,transformer)
#   put in place of the shipped ones, or "-" for none; offset 0 = the fixed test prompts, 1000 = the development set.
# Writes OUTDIR/eval_NAME.json (`surf mini eval`, 100 prompts, 40 steps, fp32 upcast of the fp16 weights).
set -o pipefail
OUT=$1; shift; mkdir -p $OUT
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_mini/*.whl || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
for spec in "$@"; do
  IFS=: read -r name parts size g off <<< "$spec"
  M=/tmp/cand_$name; rm -rf $M && cp -r src/surf_video/assets/surf-mini $M
  if [ "$parts" != "-" ]; then for p in ${parts//,/ }; do rm -rf $M/$p && cp -r .mini_ckpt/cand/$p $M/$p; done; fi
  python3 -m surf_video.cli.main mini eval --device cuda --model $M --size $size --guidance $g --prompt-offset $off \
    --out $OUT/eval_$name.json > /dev/null 2>> $OUT/eval_log.txt || echo "eval $name failed" | tee -a $OUT/eval_log.txt
  python3 -c "import json; a = json.load(open('$OUT/eval_$name.json'))['adherence']; print('$name', a)"
done
