#!/usr/bin/env bash
# Build SageAttention 2 (diffusers' `sage` backends need >= 2.1.1; PyPI has only 1.0.6) on the device for sm_90,
# check it against SDPA, then time the Wan 2.1 14B 720p row with it (issue 12).
# Source: `fetch github:thu-ml/SageAttention`, then (here) git archive HEAD csrc sageattention setup.py LICENSE
# MANIFEST.in pyproject.toml | tar x -C .sage_src   (.sage_src is git-ignored; carry it with .whl_fast).
# Usage: timeout 590 bash benchmarks/build_sage.sh $OUT
set -u
OUT=$1; mkdir -p $OUT; T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_fast/*.whl || exit 1
rm -rf /tmp/site/sageattention /tmp/site/sageattention-*.dist-info   # the PyPI 1.0.6 that diffusers rejects
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
nvcc --version | tail -1; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
(cd .sage_src && TORCH_CUDA_ARCH_LIST=9.0 EXT_PARALLEL=4 MAX_JOBS=16 NVCC_APPEND_FLAGS="--threads=4" \
  timeout ${BUILD_S:-420} python3 -m pip wheel --no-build-isolation --no-deps -w $OUT . > $OUT/build.log 2>&1)
echo "build rc $? after $(( $(date +%s) - T0 )) s"; tail -3 $OUT/build.log; ls -la $OUT
ls $OUT/sageattention-*.whl > /dev/null 2>&1 || exit 1
python3 -m pip install -q --no-deps --no-compile --target /tmp/site $OUT/sageattention-*.whl
python3 - <<'PY' 2>&1 | tee $OUT/check.txt
import torch, torch.nn.functional as F
from sageattention import sageattn
from diffusers.models import attention_dispatch as ad
print("diffusers can use sage:", ad._CAN_USE_SAGE_ATTN)
q, k, v = (torch.randn(1, 40, 75600, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
ref = F.scaled_dot_product_attention(q, k, v)
out = sageattn(q, k, v, tensor_layout="HND")
print("rel L2 vs SDPA:", ((out.float() - ref.float()).norm() / ref.float().norm()).item())
for name, fn in [("sdpa", lambda: F.scaled_dot_product_attention(q, k, v)), ("sage", lambda: sageattn(q, k, v, tensor_layout="HND"))]:
    fn(); torch.cuda.synchronize(); e0, e1 = torch.cuda.Event(True), torch.cuda.Event(True); e0.record()
    for _ in range(5): fn()
    e1.record(); torch.cuda.synchronize(); print(f"{name}: {e0.elapsed_time(e1) / 5:.1f} ms (Wan 14B 720p shape, 40 heads x 75600 tokens)")
PY
echo "=== row after $(( $(date +%s) - T0 )) s"
python3 -m surf_video.cli.main bench speed --timed-steps 1 --no-vae-decode --out $OUT --model wan14b --target 720p \
  --attention-backend sage 2>&1 | grep -v "it/s\]\|s/it\]" | tail -5
