#!/usr/bin/env bash
# Session 8, GPU command 6 as it ran (first version of ../sweep.sh): adherence of a checkpoint average, no training.
# The tree's assets held the average of the v5 base (cmd2 of session 7) and cmd4, cmd5 of this session ("soup");
# the cmd5 rows failed: the device machine had been handed back, so .mini_ckpt/cand (cmd5) was not there.
OUT=$1; mkdir -p $OUT/j
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_mini/*.whl || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
sha1sum .mini_ckpt/cand/transformer/diffusion_pytorch_model.safetensors  # cmd5: 573368e4...
M=/tmp/m5; rm -rf $M && cp -r src/surf_video/assets/surf-mini $M && rm -rf $M/transformer && cp -r .mini_ckpt/cand/transformer $M/transformer
ev() {  # ev NAME ARGS...: 100 prompts, 128 px, CFG 5, 40 steps, shift 3 unless ARGS say otherwise
  n=$1; shift
  python3 -m surf_video.cli.main mini eval --device cuda "$@" --out $OUT/j/$n.json > /dev/null 2>> $OUT/j/log.txt
  python3 -c "import json; print('$n', json.load(open('$OUT/j/$n.json'))['adherence'])"
}
ev soup_d1 --prompt-offset 1000
ev soup_d2 --prompt-offset 2000
ev c5_d2 --model $M --prompt-offset 2000
for g in 3 4 7; do ev c5_d1_g$g --model $M --prompt-offset 1000 --guidance $g; done
ev c5_d1_shift2 --model $M --prompt-offset 1000 --flow-shift 2
ev c5_d1_shift5 --model $M --prompt-offset 1000 --flow-shift 5
ev c5_d1_steps60 --model $M --prompt-offset 1000 --steps 60
ev soup_t128 --prompt-offset 0
(cd $OUT && tar czf sweep.tgz j && rm -rf j)
