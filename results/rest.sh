#!/usr/bin/env bash
# The rest of a decisive-runs grid on this machine's CPUs: the runs of results/NAME/grid*.json
# (NAME: table1_15 or phase; the grids run.sh and gpu_runs.sh run) that have no ended run in
# NAME's MLflow store yet, whoever trained the others (a GPU through import_gpu_runs.sh, the
# run.sh sweeps), as ONE resumable sweep NAME-rest (sweeps/expmod_grid.py --from-grid
# --skip-ended). Start it in the background, and after an interruption the same way with RESUME=1:
#   nohup bash results/rest.sh table1_15 >> ~/grok-runs/table1_15/rest.log 2>&1 &
#   RESUME=1 nohup bash results/rest.sh table1_15 >> ~/grok-runs/table1_15/rest.log 2>&1 &
# Everything it writes is under $GROK_RUNS (default ~/grok-runs/NAME), outside the work tree.
# CPUS trials at once (default 2), NICE (default 10); PACK (default auto, which is off on CPUs:
# sweeps/packing.py). Then results/NAME/make.sh. REST_TAG=2 names the sweep NAME-rest2: a new
# rest sweep, once NAME-rest has ended, for grids added since.
set -uo pipefail
cd "$(dirname "$0")/.."
NAME=${1:?give table1_15 or phase}
[ -f "results/$NAME/grid.json" ] || ls results/"$NAME"/grid-*.json > /dev/null 2>&1 \
    || { echo "error: results/$NAME has no grid*.json"; exit 2; }
RUNS=${GROK_RUNS:-$HOME/grok-runs/$NAME}
CPUS=${CPUS:-2}
PORT=${RAY_PORT:-$([ "$NAME" = phase ] && echo 6392 || echo 6391)}
PY=${PYTHON:-.venv/bin/python}
# The grid files in their order of priority (phase: results/phase/parts.sh).
if [ "$NAME" = phase ]; then
    source results/phase/parts.sh
    GRIDS=()
    for part in $PHASE_PARTS; do
        GRIDS+=("results/phase/grid-$part.json")
    done
else
    GRIDS=("results/$NAME/grid.json")
fi
source results/ray_head.sh
start_ray_head "/tmp/ray-$NAME"
# A new sweep leaves out what has ended; a resumed one runs its stored grid.
how=(--skip-ended)
SWEEP="$NAME-rest${REST_TAG:-}"
[ -n "${RESUME:-}" ] && [ -d "$RUNS/ray/$SWEEP" ] && how=(--resume)
"$PY" sweeps/expmod_grid.py --from-grid "${GRIDS[@]}" "${how[@]}" --name "$SWEEP" \
    --address "127.0.0.1:$PORT" --experiment "$NAME" --tracking-uri "sqlite:///$RUNS/mlflow.db" \
    --storage "$RUNS/ray" --progress-every 600 --pack "${PACK:-auto}" --figures none \
    || echo "$SWEEP did not finish every trial (exit $?)"
