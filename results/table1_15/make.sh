#!/usr/bin/env bash
# The committed results of results/table1_15/run.sh (run from the project root): trials.csv from
# its MLflow store, then everything else from trials.csv alone (no MLflow), which anyone can
# check: table1_15.csv / table1_15.md (analysis.grok_table), the Kaplan-Meier figure, the heat
# map, orbit_1_1_113.txt (the four rows that are (1, 1) renamed, row against row), progress.txt
# (how many runs of grid.json ended). NO_MLFLOW=1 skips the first step
# (rebuild from the committed trials.csv); OUT=DIR writes elsewhere (tests/test_results.py
# rebuilds into a temporary folder and compares).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${GROK_RUNS:-$HOME/grok-runs/table1_15}
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-results/table1_15}
if [ -z "${NO_MLFLOW:-}" ]; then
    "$PY" -m analysis.grok_table --experiment table1_15 --tracking-uri "sqlite:///$RUNS/mlflow.db" \
        --write-trials "$OUT/trials.csv" --format text --no-log
fi
"$PY" -m analysis.grok_table --trials "$OUT/trials.csv" --format csv --out "$OUT/table1_15.csv" \
    > /dev/null
"$PY" -m analysis.grok_table --trials "$OUT/trials.csv" --format md --out "$OUT/table1_15.md" \
    --plot-km "$OUT/grok_km.png" --plot-heatmap "$OUT/grok_heatmap.png" > /dev/null
# (1, 1), (3, 3), (5, 5), (9, 9) at 113 are one task renamed (analysis.renamings.orbit): their grok
# times, row against row (log-rank, Holm over the six pairs)
"$PY" -m analysis.grok_table --trials "$OUT/trials.csv" --no-log \
    --pairwise 1,1,113 3,3,113 5,5,113 9,9,113 > "$OUT/orbit_1_1_113.txt"
"$PY" -m analysis.grid_progress --trials "$OUT/trials.csv" results/table1_15/grid.json \
    > "$OUT/progress.txt"
