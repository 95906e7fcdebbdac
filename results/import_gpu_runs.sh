#!/usr/bin/env bash
# After results/gpu_runs.sh on a GPU machine: log its runs into the MLflow stores of
# results/table1_15/run.sh and results/phase/run.sh (sweeps table1_15-gpu and phase-gpu, each run
# a child run as a sweep trial's; python -m sweeps.import_runs), then rebuild both results folders
# (their make.sh). Runs of a configuration that the CPU sweeps had already ended count once
# (analysis.trials.one_run_per_setting).
#   bash results/import_gpu_runs.sh FOLDER     (FOLDER: the files gpu_runs.sh left in its $OUT)
# SWEEP_TAG names a later call's sweeps apart (table1_15-gpu2, phase-gpu2: SWEEP_TAG=2).
set -euo pipefail
cd "$(dirname "$0")/.."
FROM=${1:?give the folder that holds table1_15_runs.tar.xz and phase_runs.tar.xz}
PY=${PYTHON:-.venv/bin/python}
RUNS=${GROK_RUNS_ROOT:-$HOME/grok-runs}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for name in table1_15 phase; do
    if ls "$FROM/${name}_runs.tar.xz.part-"* > /dev/null 2>&1; then
        cat "$FROM/${name}_runs.tar.xz.part-"* > "$WORK/$name.tar.xz"
    elif [ -f "$FROM/${name}_runs.tar.xz" ]; then
        cp "$FROM/${name}_runs.tar.xz" "$WORK/$name.tar.xz"
    else
        echo "no runs of $name in $FROM"; continue
    fi
    tar -C "$WORK" -xJf "$WORK/$name.tar.xz"
    mkdir -p "$RUNS/$name"
    "$PY" -m sweeps.import_runs "$WORK/$name" --experiment "$name" --name "$name-gpu${SWEEP_TAG:-}" \
        --tracking-uri "sqlite:///$RUNS/$name/mlflow.db" || true  # exit 1: some unfinished
    GROK_RUNS="$RUNS/$name" bash "results/$name/make.sh"
done
