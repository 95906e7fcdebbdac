#!/usr/bin/env bash
# The committed results of results/cycles_41/run.sh (run from the project root): trials.csv from
# its MLflow store, then everything else from trials.csv alone (no MLflow):
#   cycles_41.md, cycles_41.csv   the grok table of the two rows, grok_km.png its Kaplan-Meier
#   test.txt                      the test decided before the runs: Fisher's exact test of
#                                 grokked by the end, (1, 21) (31 cycles) against (1, 39) (22),
#                                 both of relative order 2; the same paired by seed (McNemar,
#                                 added after the runs); then the Cox model of
#                                 C(relative_cycles) and km_by_relative_cycles.png
#   rows_41.txt                   exploratory: every bijective row at 41 on seeds 3-14, from
#                                 this part and results/phase/trials.csv
#   progress.txt                  how many runs of grid.json ended
# NO_MLFLOW=1 skips the first step; OUT=DIR writes elsewhere (tests/test_results.py rebuilds
# into a temporary folder and compares).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${GROK_RUNS:-$HOME/grok-runs/cycles_41}
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-results/cycles_41}
T="$OUT/trials.csv"
if [ -z "${NO_MLFLOW:-}" ]; then
    "$PY" -m analysis.grok_table --experiment cycles_41 --tracking-uri "sqlite:///$RUNS/mlflow.db" \
        --write-trials "$T" --format text --no-log > /dev/null
fi
"$PY" -m analysis.grok_table --trials "$T" --format csv --out "$OUT/cycles_41.csv" > /dev/null
"$PY" -m analysis.grok_table --trials "$T" --format md --out "$OUT/cycles_41.md" \
    --plot-km "$OUT/grok_km.png" > /dev/null
{ echo "## The test decided before the runs: grokked by the end, 31 cycles against 22 (order 2 both)"
  "$PY" -m analysis.outcomes --trials "$T" --by relative_order --between relative_cycles
  echo
  echo "## Added after the runs: the same, paired (replicate j of both rows shares seed and data seed)"
  "$PY" -m analysis.outcomes --trials "$T" --by relative_order --between relative_cycles \
      --paired | sed -n '/^Paired/,$p'
  echo
  echo "## Secondary: the Cox model of grok time"
  "$PY" -m analysis.hazard --trials "$T" --formula "C(relative_cycles)" \
      --plot-km-by relative_cycles "$OUT/km_by_relative_cycles.png"
} > "$OUT/test.txt" 2>&1 || true
# exploratory, chosen after the runs: every bijective row at 41 on the seeds both this part and
# the phase diagram's order-41 part ran (3-14), by relative order and cycles
SEEDS=$(seq -s, 3 14)
{ echo "## Exploratory (after the runs): every bijective row at 41, seeds and data seeds 3-14"
  echo "## (results/phase/trials.csv and this part's trials.csv)"
  "$PY" -m analysis.outcomes --trials results/phase/trials.csv "$T" --only p=41 --only split=pairs \
      --only dtype=float32 --only frac_train=0.5 --only bijective_a=1 --only bijective_b=1 \
      --only "seed=$SEEDS" --only "data_seed=$SEEDS" --by relative_order,relative_cycles
} > "$OUT/rows_41.txt"
"$PY" -m analysis.grid_progress --trials "$T" results/cycles_41/grid.json > "$OUT/progress.txt"
