#!/usr/bin/env bash
# The committed results of results/same_cycles_41/run.sh (run from the project root):
# trials.csv from its MLflow store, then everything else from trials.csv and
# results/cycles_41/trials.csv (the rows (1, 21) and (1, 39), same seeds) alone (no MLflow):
#   same_cycles_41.md, .csv   the grok table of the two new rows, grok_km.png its Kaplan-Meier
#   test.txt                  the test decided before the runs: (1, 19) against (1, 39), both of
#                             order 2 and 22 cycles, paired by seed (exact McNemar; Fisher
#                             beside it); then the four order-2 rows by cycles (secondary),
#                             km_by_relative_cycles.png and km_by_relative_exponent.png
#   progress.txt              how many runs of grid.json ended
# NO_MLFLOW=1 skips the first step; OUT=DIR writes elsewhere (tests/test_results.py rebuilds
# into a temporary folder and compares).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${GROK_RUNS:-$HOME/grok-runs/same_cycles_41}
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-results/same_cycles_41}
T="$OUT/trials.csv"
BOTH=(results/cycles_41/trials.csv "$T")
if [ -z "${NO_MLFLOW:-}" ]; then
    "$PY" -m analysis.grok_table --experiment same_cycles_41 \
        --tracking-uri "sqlite:///$RUNS/mlflow.db" --write-trials "$T" --format text --no-log \
        > /dev/null
fi
"$PY" -m analysis.grok_table --trials "$T" --format csv --out "$OUT/same_cycles_41.csv" > /dev/null
"$PY" -m analysis.grok_table --trials "$T" --format md --out "$OUT/same_cycles_41.md" \
    --plot-km "$OUT/grok_km.png" > /dev/null
# the seeds of this part's ended runs, so that a partial part is compared on its own seeds
SEEDS=$("$PY" -c "import pandas as pd, sys; t = pd.read_csv(sys.argv[1]); \
print(','.join(map(str, sorted(set(t.seed)))))" "$T")
{ echo "## The test decided before the runs: (1, 19) against (1, 39), order 2 and 22 cycles both"
  "$PY" -m analysis.outcomes --trials "${BOTH[@]}" --only b=19,39 --only "seed=$SEEDS" \
      --by relative_cycles --between relative_exponent --paired
  echo
  echo "## Secondary: the four rows of order 2 at 41 by cycles, on the same seeds"
  "$PY" -m analysis.outcomes --trials "${BOTH[@]}" --only "seed=$SEEDS" \
      --by relative_order,relative_cycles,relative_exponent
  "$PY" -m analysis.hazard --trials "${BOTH[@]}" --only "seed=$SEEDS" \
      --formula "C(relative_cycles)" --plot-km-by relative_cycles "$OUT/km_by_relative_cycles.png" \
      > /dev/null
  "$PY" -m analysis.hazard --trials "${BOTH[@]}" --only "seed=$SEEDS" \
      --formula "C(relative_exponent)" --plot-km-by relative_exponent \
      "$OUT/km_by_relative_exponent.png"
} > "$OUT/test.txt" 2>&1 || true
"$PY" -m analysis.grid_progress --trials "$T" results/same_cycles_41/grid.json > "$OUT/progress.txt"
