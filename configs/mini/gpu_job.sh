#!/usr/bin/env bash
# One GPU command (< 10 min) of the SURF-Mini training, as run on the borrowed H100.
# Usage (repo root, wheels of diffusers in .whl_mini/): bash configs/mini/gpu_job.sh STAGE OUTDIR
#   STAGE=vae: the VAE alone (comes back as vae.tar.*; put the parts in .mini_ckpt/ for stage 1, or for
#              another `vae` command, which then continues that VAE: chain commands until the evaluator ceiling
#              (evaluator_on_reconstructions in vae.json) is high enough to train a base);
#   STAGE=1: VAE (or the one in .mini_ckpt/vae.tar.* if there), then base (and a refiner when REF_TIMEOUT=seconds is set);
#   STAGE=2: base resumed from .mini_ckpt/pipe (else the shipped assets), then refiner (NO_REF=1: base only);
#   STAGE=refiner: a refiner alone against the shipped pipeline's frozen VAE and text encoder (REF_ARGS);
#   STAGE=all: VAE, base and refiner in one command;
#   STAGE=base: the base alone from the tree's assets, text encoder frozen (BASE_ARGS, e.g. --set grow_layers=16),
#              back as transformer.tar.*; then gpu_eval.sh on EVAL="name:transformer:size:guidance:offset ...";
#   STAGE=par: from the shipped assets, three processes side by side on the one GPU: a decoder-only VAE fine-tune
#              (VAE_ARGS), the base with its text encoder frozen (BASE_ARGS) and a refiner (REF_ARGS; it needs only
#              the frozen encoders, so all three results fit together), plus a sampling sweep of the shipped
#              pipeline on the development prompts (SWEEP="guidance:steps:shift ..."); each part comes back alone
#              (vae.tar.*, transformer.tar.*, refiner.tar.*) and its log is in metrics.tgz.
# Weights come back as fp16 tar parts (<= 15 MB each) under OUTDIR, files over 15 MB sharded as shipped: to ship
# or chain a result, replace the whole component folder (rm -rf, then copy), never copy files over an old one.
set -o pipefail
STAGE=$1; OUT=$2; W=/tmp/w; mkdir -p $W $OUT
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_mini/*.whl || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
SURF="python3 -m surf_video.cli.main mini train"
filt() { grep --line-buffered -v "it/s\]\|s/it\]"; }
nvidia-smi --query-gpu=name --format=csv,noheader
# a call brings back at most 8 files: logs and metrics go into one archive next to the weight parts
bundle() { (cd $OUT && ls *.json *.txt > /dev/null 2>&1 && tar czf metrics.tgz $(ls *.json *.txt 2>/dev/null) && rm -f *.json *.txt); ls -la $OUT; }
# pack SRC NAME: fp16 copy of $W/SRC as tar parts $OUT/NAME.tar.aa, ab, ... (15 MB each)
pack() { rm -rf $W/pack_$2 && mkdir -p $W/pack_$2 && cp -r $W/$1 $W/pack_$2/$2 && \
  python3 -c "from surf_video.mini.export import halve_safetensors as h, shard_safetensors as s; h('$W/pack_$2'); s('$W/pack_$2')" && \
  (cd $W/pack_$2 && tar cf - $2 | split -b 15m - $OUT/$2.tar.); }
if [ "$STAGE" = vae ]; then
  RES=""  # a chain of commands: continue the VAE that an earlier command brought back (fp16 parts in .mini_ckpt/)
  if ls .mini_ckpt/vae.tar.* > /dev/null 2>&1; then
    mkdir -p $W/ck && tar xf <(cat .mini_ckpt/vae.tar.*) -C $W/ck && RES="--resume $W/ck/vae" && echo "resuming .mini_ckpt VAE" | tee -a $OUT/log.txt
  elif [ -n "${VAE_RESUME:-}" ]; then  # e.g. src/surf_video/assets/surf-mini/vae (the shipped VAE)
    RES="--resume $VAE_RESUME" && echo "resuming $VAE_RESUME" | tee -a $OUT/log.txt
  fi
  $SURF vae --config configs/mini/vae.yaml --out $W/vae --metrics $OUT/vae.json $RES ${VAE_ARGS:-} 2>&1 | filt | tee -a $OUT/log.txt
  pack vae vae
  bundle; exit 0
elif [ "$STAGE" = 1 ]; then
  if ls .mini_ckpt/vae.tar.* > /dev/null 2>&1; then
    mkdir -p $W/ck && tar xf <(cat .mini_ckpt/vae.tar.*) -C $W/ck && cp -r $W/ck/vae $W/vae && echo "VAE from .mini_ckpt" | tee -a $OUT/log.txt
  else
    $SURF vae --config configs/mini/vae.yaml --out $W/vae --metrics $OUT/vae.json ${VAE_ARGS} 2>&1 | filt | tee -a $OUT/log.txt
  fi
  $SURF base --config configs/mini/base.yaml --vae $W/vae --out $W/pipe --metrics $OUT/base.json ${BASE_ARGS} 2>&1 | filt | tee -a $OUT/log.txt
  if [ -n "${REF_TIMEOUT:-}" ]; then  # also a first refiner, killed after REF_TIMEOUT s so that the base still comes back
    timeout $REF_TIMEOUT $SURF refiner --config configs/mini/refiner.yaml --pipe $W/pipe --out $W/pipe/refiner --metrics $OUT/refiner.json ${REF_ARGS} 2>&1 | filt | tee -a $OUT/log.txt
  fi
  PACK="pipe"
elif [ "$STAGE" = refiner ]; then
  $SURF refiner --config configs/mini/refiner.yaml --pipe src/surf_video/assets/surf-mini --out $W/refiner \
    --metrics $OUT/refiner.json ${REF_ARGS:-} 2>&1 | filt > $OUT/refiner_log.txt && pack refiner refiner
  bundle; exit 0
elif [ "$STAGE" = base ]; then
  # the base alone, resumed from the transformer in the tree's assets (swap a candidate in there to chain commands),
  # text encoder frozen (the shipped refiner stays valid); then adherence of the result on EVAL specs (gpu_eval.sh)
  SHIP=src/surf_video/assets/surf-mini; OK=""
  rm -rf $W/pipe $W/pack_transformer  # a warm machine may hold an earlier call's weights: never evaluate those
  $SURF base --config configs/mini/base.yaml --vae $SHIP/vae --resume $SHIP --out $W/pipe --metrics $OUT/base.json \
    --final-eval 0 --set text_lr=0 ${BASE_ARGS:-} 2>&1 | filt > $OUT/base_log.txt && pack pipe/transformer transformer && OK=1
  tail -3 $OUT/base_log.txt
  if [ -n "${EVAL:-}" ] && [ -n "$OK" ]; then  # score the fp16 copy that comes back, i.e. what would ship
    rm -rf .mini_ckpt/cand/transformer && mkdir -p .mini_ckpt/cand && cp -r $W/pack_transformer/transformer .mini_ckpt/cand/transformer
    bash configs/mini/gpu_eval.sh $OUT $EVAL
  fi
  bundle; exit 0
elif [ "$STAGE" = par ]; then
  SHIP=src/surf_video/assets/surf-mini
  TL=${PART_TIMEOUT:-560}  # each part is killed after this many seconds, so that the others still come back
  (timeout $TL $SURF vae --config configs/mini/vae.yaml --resume $SHIP/vae --out $W/vae --metrics $OUT/vae.json \
     --set train_encoder=false ${VAE_ARGS:-} 2>&1 | filt > $OUT/vae_log.txt && pack vae vae) &
  (timeout $TL $SURF base --config configs/mini/base.yaml --vae $SHIP/vae --resume $SHIP --out $W/pipe \
     --metrics $OUT/base.json --set text_lr=0 ${BASE_ARGS:-} 2>&1 | filt > $OUT/base_log.txt && pack pipe/transformer transformer) &
  (timeout $TL $SURF refiner --config configs/mini/refiner.yaml --pipe $SHIP --out $W/refiner --metrics $OUT/refiner.json \
     ${REF_ARGS:-} 2>&1 | filt > $OUT/refiner_log.txt && pack refiner refiner) &
  for spec in ${SWEEP:-}; do  # guidance:steps:flow_shift on the development prompts (offset 1000), shipped weights
    IFS=: read -r g n sh <<< "$spec"
    python3 -m surf_video.cli.main mini eval --device cuda --prompt-offset 1000 --prompts ${SWEEP_PROMPTS:-100} \
      --guidance $g --steps $n --flow-shift $sh --out $OUT/sweep_g${g}_n${n}_s${sh}.json > /dev/null 2>> $OUT/sweep_log.txt
  done
  wait
  bundle; exit 0
elif [ "$STAGE" = all ]; then
  $SURF vae --config configs/mini/vae.yaml --out $W/vae --metrics $OUT/vae.json ${VAE_ARGS} 2>&1 | filt | tee -a $OUT/log.txt
  $SURF base --config configs/mini/base.yaml --vae $W/vae --out $W/pipe --metrics $OUT/base.json ${BASE_ARGS} 2>&1 | filt | tee -a $OUT/log.txt
  pack pipe pipe
  $SURF refiner --config configs/mini/refiner.yaml --pipe $W/pipe --out $W/refiner --metrics $OUT/refiner.json ${REF_ARGS} 2>&1 | filt | tee -a $OUT/log.txt
  pack refiner refiner
  bundle; exit 0
else
  if ! ls .mini_ckpt/pipe.tar.* > /dev/null 2>&1; then  # continue the shipped pipeline (too big to carry as parts)
    mkdir -p .mini_ckpt && tar cf - -C src/surf_video/assets --exclude README.md --transform 's/^surf-mini/pipe/' surf-mini \
      | split -b 15m - .mini_ckpt/pipe.tar. && echo "pipeline from the shipped assets" | tee -a $OUT/log.txt
  fi
  mkdir -p $W/ck && tar xf <(cat .mini_ckpt/pipe.tar.*) -C $W/ck
  $SURF base --config configs/mini/base.yaml --vae $W/ck/pipe/vae --resume $W/ck/pipe --out $W/pipe --metrics $OUT/base.json ${BASE_ARGS} 2>&1 | filt | tee -a $OUT/log.txt
  if [ -z "${NO_REF:-}" ]; then  # NO_REF=1: base only (the shipped refiner is copied along)
    # the base comes back first (pipe.tar.*), so a refiner cut by the command's time limit loses only itself
    pack pipe pipe
    $SURF refiner --config configs/mini/refiner.yaml --pipe $W/pipe --out $W/refiner --metrics $OUT/refiner.json ${REF_ARGS} 2>&1 | filt | tee -a $OUT/log.txt
    pack refiner refiner
    bundle; exit 0
  elif [ -d $W/ck/pipe/refiner ] && [ ! -d $W/pipe/refiner ]; then cp -r $W/ck/pipe/refiner $W/pipe/refiner; fi
  PACK="pipe"
fi
python3 -c "from surf_video.mini.export import halve_safetensors as h, shard_safetensors as s; h('$W/pipe'); s('$W/pipe')"
(cd $W && tar cf - $PACK | split -b 15m - $OUT/pipe.tar.)
bundle
