#!/usr/bin/env bash
# Pilot of the Fashion-MNIST normalization study: learning curves of SN and unnormalized D
# at a conservative and an aggressive SNGAN optimizer setting, evaluated every 200 G steps,
# from which the study's length and settings are chosen (docs/studies.md, "Fashion-MNIST study").
#   scripts/fmnist_pilot.sh                    # C for 2000 G steps, F for 600, seed 0
#   SETTINGS="C:2000 D:1000" NORMS=spectral,none,batch scripts/fmnist_pilot.sh
# Each setting is one two-run sweep (one thread per run) under $OUT/<setting>; then the
# report, with the curves of recall and class coverage beside FID, goes to $OUT/report.
set -euo pipefail
SETTINGS=${SETTINGS:-C:2000 F:600}
NORMS=${NORMS:-spectral,none}
SEED=${SEED:-0}
OUT=${OUT:-multirun/fmnist_pilot}
GANSN_TRAIN=${GANSN_TRAIN:-gansn-train}
GANSN_REPORT=${GANSN_REPORT:-gansn-report}
for item in $SETTINGS; do
  setting=${item%%:*} steps=${item##*:}
  $GANSN_TRAIN -m experiment=norm_study_fmnist "norm@d_norm=$NORMS" seed="$SEED" \
    setting="$setting" steps="$steps" report=false sample_every=200 ckpt_every=200 \
    metrics.eval_every=200 lipschitz_every=200 hydra.sweep.dir="$OUT/$setting"
done
$GANSN_REPORT "$OUT" --out "$OUT/report" --title "Fashion-MNIST pilot" \
  --curves metrics/precision,metrics/recall,metrics/coverage,modes/class_coverage
