#!/usr/bin/env bash
# Reproduce PacGAN's unpacked-GAN baseline (Table 1) with gansn: every dataset x seed as its
# own run dir runs/pacgan/<dataset>/s<seed>, JOBS runs side by side (one thread each).
#   scripts/pacgan_reproduce.sh                 # 50 epochs, seeds 0 1 2, ring8 and grid25
#   STEPS=400000 SEEDS=0 scripts/pacgan_reproduce.sh   # the full 400 epochs of seed 0
# A run dir that already holds a checkpoint is continued (exact resume) up to STEPS, so a
# 50-epoch run is extended to 400 epochs by the second command.
set -euo pipefail
STEPS=${STEPS:-50000}
SEEDS=${SEEDS:-0 1 2}
DATASETS=${DATASETS:-ring8 grid25}
JOBS=${JOBS:-2}
OUT=${OUT:-runs/pacgan}
GANSN_TRAIN=${GANSN_TRAIN:-gansn-train}
for seed in $SEEDS; do
  for ds in $DATASETS; do
    echo "$ds $seed"
  done
done | xargs -P "$JOBS" -L 1 sh -c \
  "$GANSN_TRAIN experiment=pacgan_\$0 seed=\$1 steps=$STEPS hydra.run.dir=$OUT/\$0/s\$1 \
   > $OUT.\$0.s\$1.log 2>&1 && echo \"done \$0 seed \$1\" || echo \"FAILED \$0 seed \$1\""
