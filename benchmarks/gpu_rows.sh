#!/usr/bin/env bash
# The speed rows still to measure on one H100 (issues 6 and 12), as `surf bench speed` calls.
# Not yet run: this session's device time was spent on the multi-GPU runs and SURF-Mini v1.
#
# Wheels (here, once): diffusers 0.42.1, importlib_metadata, torchao 0.18.0, sageattention 1.0.6 in .whl_fast/
#   (python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#      --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl_fast torchao==0.18.0 sageattention==1.0.6)
# Device (carry .whl_fast, ~10 min a part):  bash benchmarks/gpu_rows.sh A $OUT   then   bash benchmarks/gpu_rows.sh B $OUT
# Each row times the baseline and SURF with the same acceleration, so the like-for-like ratio stays visible;
# `surf bench speed-report` rebuilds benchmarks/README.md's tables from the JSONs.
set -u
PART=$1; OUT=$2; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_fast/*.whl || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 SURF_GIT_COMMIT=${SURF_GIT_COMMIT:-unknown}
B="python3 -m surf_video.cli.main bench speed --timed-steps 1 --no-vae-decode --out $OUT"
row() { echo "=== $*"; timeout ${ROW_S:-170} $B "$@" 2>&1 | grep -v "it/s\]\|s/it\]" | tail -4; }
if [ "$PART" = A ]; then
  row --model wan1.3b --target 720p,1080p                            # issue 6: the 1.3B rows
  row --model wan14b --target 720p --batch-cfg                        # go past the paper: CFG pair in one batch
  row --model wan14b --target 720p --attention-backend _native_cudnn  # fastest SDPA backend diffusers offers here
  row --model wan14b --target 720p --compile                          # regional compilation of the blocks
else
  row --model wan14b --target 720p --quantize fp8                     # issue 12: torchao float8 linears
  row --model wan14b --target 720p --attention-backend sage           # issue 12: 8-bit attention
  row --model wan14b --target 720p,1080p --batch-cfg --attention-backend _native_cudnn --compile --quantize fp8  # stacked
fi
ls -la "$OUT"
