#!/usr/bin/env bash
# Issue 12's cache rows on one H100: Wan 2.1 14B, SURF + compile + FORA-style block reuse (TaylorSeer of order 0; per-module TaylorSeer needs hundreds of GB at 480p), with the eager baseline timed in
# the same process (`--eager-baseline`), so "SURF vs eager baseline" is measured side by side.
# Device (carry .whl_fast): timeout 590 bash benchmarks/gpu_cache_rows.sh 720p $OUT   (then 1080p, a second call)
# 720p also times the compiled baseline (like-for-like); 1080p skips it (--no-accel-baseline: it would not fit
# one command), so its like-for-like ratio is the compiled 1080p baseline of results/speed_rows_h100x2/.
set -u
TARGET=$1; OUT=$2; shift 2; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_fast/*.whl || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 SURF_GIT_COMMIT=${SURF_GIT_COMMIT:-unknown}
EXTRA=""; [ "$TARGET" = 1080p ] && EXTRA="--no-accel-baseline"
python3 -m surf_video.cli.main bench speed --model wan14b --target "$TARGET" --timed-steps 1 --no-vae-decode \
  --compile --cache ${CACHE:-fora} --eager-baseline $EXTRA "$@" --out "$OUT/speed_wan14b_${TARGET}_compile_${CACHE:-fora}.json" \
  2>&1 | grep -v "it/s\]\|s/it\]" | tee "$OUT/cache_${TARGET}.log"
nvidia-smi --query-gpu=name --format=csv,noheader >> "$OUT/cache_${TARGET}.log"
