#!/usr/bin/env bash
# The committed results of results/table1/run.sh, from its MLflow store (run from the project root):
# trials.csv (one line per trial), table1.csv / table1.md (analysis.grok_table), the
# Kaplan-Meier figure and the grok heat map. table1.csv is regenerated from trials.csv alone
# (no MLflow), which is what anyone can check:
#   .venv/bin/python -m analysis.grok_table --trials results/table1/trials.csv --format csv
# SWEEP=table1-pairs takes only that sweep's trials (while the other one still runs). With both
# sweeps, compare_split.txt holds the log-rank test of each row split by pairs against by classes
# and the test pooled over those rows (stratified by row). power.txt: replicate planning
# (analysis.power); hazard.txt and hazard_forest.png: the Cox model (analysis.hazard).
# NO_MLFLOW=1 rebuilds everything from the committed trials.csv alone (tests/test_results.py
# checks that this reproduces the committed tables byte for byte); OUT=DIR writes elsewhere.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${GROK_RUNS:-$HOME/grok-runs/table1}
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-results/table1}
if [ -z "${NO_MLFLOW:-}" ]; then
    "$PY" -m analysis.grok_table --experiment table1 --tracking-uri "sqlite:///$RUNS/mlflow.db" \
        ${SWEEP:+--sweep "$SWEEP"} --write-trials "$OUT/trials.csv" --format text
fi
"$PY" -m analysis.grok_table --trials "$OUT/trials.csv" --format csv --out "$OUT/table1.csv" \
    > /dev/null
"$PY" -m analysis.grok_table --trials "$OUT/trials.csv" --format md --out "$OUT/table1.md" \
    --plot-km "$OUT/grok_km.png" --plot-heatmap "$OUT/grok_heatmap.png" > /dev/null
if [ -z "${SWEEP:-}" ]; then
    "$PY" -m analysis.grok_table --trials "$OUT/trials.csv" --compare split \
        --out "$OUT/compare_split.txt" > /dev/null
fi
"$PY" -m analysis.power --trials "$OUT/trials.csv" --at 15 > "$OUT/power.txt"
"$PY" -m analysis.hazard --trials "$OUT/trials.csv" --plot "$OUT/hazard_forest.png" \
    > "$OUT/hazard.txt"
