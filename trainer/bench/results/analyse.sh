#!/usr/bin/env bash
# Recomputes evidence-analysis.md from the committed results files of the evidence study (issue 16), with no
# training: every number in docs/benchmarks.md "Distillation quality: the method's claims" comes from here.
#   bash trainer/bench/results/analyse.sh            (from the repository's root)
set -euo pipefail
R=trainer/bench/results
N=./node_modules/.bin/node
seeds() { # seeds <prefix> [first]: the per-seed files <prefix>-<first>.json ... -10.json, comma-joined
  local out=()
  for s in $(seq "${2:-1}" 10); do out+=("$R/$1-$s.json"); done
  (IFS=,; echo "${out[*]}")
}
join() { (IFS=,; echo "$*"); }
KD=$(join $R/evidence.json $R/evidence-6.json $R/evidence-10.json $R/evidence-lr.json $R/evidence-lr-10.json)
AD=$(join $R/evidence-adaptation.json "$(seeds evidence-adaptation-famo)")
# The converged setting: the first files (seeds 1-3, 4-5, 6, 7, 8, 9, 10 at 0.005), then one file per study and
# seed (trainer/bench/studies/evidence-converged-*.yaml; "low" is evidence-converged-grid-low.yaml's alpha 0.1).
C=$(join $R/evidence-converged-4.json $R/evidence-converged-6.json $R/evidence-converged-7.json \
  $R/evidence-converged.json $R/evidence-converged-8.json $R/evidence-converged-9.json $R/evidence-converged-10.json \
  $(for f in grid low alone grid-mid lr lr-low lr-high lr-high-near lr-far lr-top lr-far-published lr-top-published lr-low-near lr-far-mid lr-top-mid; do seeds evidence-converged-$f; done))
# The sum-log control's cells above 0.9 (cnn-1k: KD, LS-KD, DIST), merged into each loss's analysis.
SUMLOG_TOP=$(join "$(seeds evidence-sumlog-edge)" "$(seeds evidence-sumlog-top)")
FEATURE_SUM=$(for w in 0.03 0.1 0.3 1; do printf '%s|' "kd+feature sum alpha=0.3 feature=$w"; done | sed 's/|$//')
{
  $N trainer/bench/evidence.ts "$KD,$AD,$SUMLOG_TOP" --adaptation kd+feature
  echo
  for loss in lskd dist dkd; do
    $N trainer/bench/evidence.ts "$KD,$(seeds evidence-$loss),$(seeds evidence-losses-controls),$SUMLOG_TOP" --loss $loss | sed "1s/^### cnn-1k: /### cnn-1k, $loss: /"
    echo
  done
  $N trainer/bench/evidence.ts "$KD,$(seeds evidence-lskd),$(seeds evidence-dist),$(seeds evidence-dkd)" \
    --best-loss kd,lskd,dist,dkd | sed -n '/^### cnn-1k: the best loss/,$p'
  echo
  $N trainer/bench/evidence.ts "$KD,$AD,$(seeds evidence-minweight)" \
    --pairs "kd mokd minWeight=0.1:kd mokd,kd+feature mokd minWeight=0.1:kd+feature mokd" |
    sed -n '/^### cnn-1k: variants/,$p' | sed '1s/variants against their bases/mokdMinWeight 0.1 against exact MoKD/'
  echo
  $N trainer/bench/evidence.ts "$KD,$(seeds evidence-adaptation-sum)" --pairs "$FEATURE_SUM:kd sum alpha=0.3" |
    sed -n '/^### cnn-1k: variants/,$p' | sed '1s/variants against their bases/the adaptation module under a fixed weighting/'
  echo
  # The SGD and AdamW recipes, with their controls (evidence-recipes-controls-*.json). The AdamW recipe's seeds 1 and
  # 2 ran inside evidence-recipes-1/-2.json (the file held both recipes then), its seeds 3-10 in
  # evidence-recipes-adamw-3..10.json.
  $N trainer/bench/evidence.ts "$(seeds evidence-recipes),$(seeds evidence-recipes-adamw 3),$(seeds evidence-recipes-controls)"
  $N trainer/bench/evidence.ts "$R/evidence-mlp.json,$(seeds evidence-mlp-low)"
  echo
  $N trainer/bench/evidence.ts "$R/evidence-mlp10k-10.json,$R/evidence-mlp10k-8.json,$R/evidence-mlp10k-9.json,$R/evidence-mlp10k.json,$(seeds evidence-mlp10k-low)"
  echo
  $N trainer/bench/evidence.ts "$C"
  echo
  # The plateau: the configurations chosen at 8 epochs, run again on a 16-epoch schedule (nothing re-chosen).
  $N trainer/bench/evidence.ts "$C,$(seeds evidence-converged-long),$(seeds evidence-converged-long-alone)" --schedule cnn-54k-16-epochs:cnn-54k |
    sed -n '/^### cnn-54k-16-epochs against/,$p'
  echo
  $N trainer/bench/evidence.ts "$(seeds evidence-tinymlp10k),$(seeds evidence-tinymlp10k-low),$(seeds evidence-tinymlp10k-sumlog-edge)"
  echo
  # What every committed results file cost (issue 16, point 4: the study's run time).
  $N trainer/bench/evidence.ts "$(join $R/*.json)" --cost
} > $R/evidence-analysis.md
