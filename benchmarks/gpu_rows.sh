#!/usr/bin/env bash
# The speed rows still to measure on one H100 (issues 6 and 12), as `surf bench speed` calls.
#
# Wheels (here, once): diffusers 0.42.1, importlib_metadata, torchao 0.18.0, sageattention 1.0.6 in .whl_fast/
#   (python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#      --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl_fast torchao==0.18.0 sageattention==1.0.6)
# Device (carry .whl_fast): on nvidia-h100-x2, timeout 590 bash benchmarks/gpu_rows.sh both $OUT (A and B side by side);
# on one GPU, A and B as two commands (~10 min each)
# Each row times the baseline and SURF with the same acceleration, so the like-for-like ratio stays visible;
# `surf bench speed-report` rebuilds benchmarks/README.md's tables from the JSONs.
set -u
PART=$1; OUT=$2; mkdir -p "$OUT"
[ -n "${SURF_SITE_READY:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_fast/*.whl || exit 1
export SURF_SITE_READY=1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 SURF_GIT_COMMIT=${SURF_GIT_COMMIT:-unknown}
B="python3 -m surf_video.cli.main bench speed --timed-steps 1 --no-vae-decode --out $OUT"
row() { echo "=== $*"; timeout ${ROW_S:-170} $B "$@" 2>&1 | grep -v "it/s\]\|s/it\]" | tail -4; }
if [ "$PART" = A ]; then   # GPU 0 of the 2-GPU command below; rows in order of need, later ones may be cut
  ROW_S=280 row --model wan14b --target 720p,1080p                   # eager baseline and SURF on this machine
  row --model wan14b --target 720p --quantize fp8                     # issue 12: torchao float8 linears
  row --model wan14b --target 720p --attention-backend sage           # issue 12: 8-bit attention
  row --model wan14b --target 720p --batch-cfg                        # go past the paper: CFG pair in one batch
  row --model wan1.3b --target 720p,1080p                            # issue 6: the 1.3B rows
elif [ "$PART" = B ]; then
  ROW_S=${STACK_S:-330} row --model wan14b --target 720p,1080p --batch-cfg --attention-backend _native_cudnn --compile --quantize fp8  # stacked
  row --model wan14b --target 720p --compile                          # regional compilation of the blocks
  row --model wan14b --target 720p --attention-backend _native_cudnn  # fastest SDPA backend diffusers offers here
elif [ "$PART" = both ]; then  # A on GPU 0 and B on GPU 1 at once; one tar comes back (a call returns few files)
  CUDA_VISIBLE_DEVICES=0 timeout ${PART_S:-545} bash $0 A $OUT/gpu0 > $OUT/gpu0.log 2>&1 &
  CUDA_VISIBLE_DEVICES=1 timeout ${PART_S:-545} bash $0 B $OUT/gpu1 > $OUT/gpu1.log 2>&1 &
  wait; cat $OUT/gpu0.log $OUT/gpu1.log
  (cd $OUT && tar czf rows.tgz gpu0 gpu1 gpu0.log gpu1.log && rm -rf gpu0 gpu1 gpu0.log gpu1.log)
fi
ls -la "$OUT"
