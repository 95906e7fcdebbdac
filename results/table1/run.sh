#!/usr/bin/env bash
# Table 1 of the seed paper at the seed's own settings, on the platform (issue 13):
#   1. the ten (a, b, p) rows, split by pairs (x, y) as the seed does, 3 replicates each
#      (replicate i: seed 999+i, data_seed 598+i), frac 0.3, lr 1e-3, weight decay 1, float32,
#      40,000 epochs, an evaluation every 100, stop 5 evaluations after grokking;
#   2. the five rows with a non-bijective exponent at p = 113 again, split by classes
#      (x^a, y^b) so that no test pair has a training twin, 20,000 epochs, same replicates.
# It takes hours on 2 cores. Run it from the project root, in the background:
#   nohup bash results/table1/run.sh > ~/grok-runs/table1/run.log 2>&1 &
# and after an interruption continue both sweeps where they stopped with
#   RESUME=1 nohup bash results/table1/run.sh >> ~/grok-runs/table1/run.log 2>&1 &
# Everything it writes (Ray's trial state, the MLflow store) is under $GROK_RUNS, outside the
# work tree. CPUS sets how many trials run at once (one CPU each). Then results/table1/make.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
RUNS=${GROK_RUNS:-$HOME/grok-runs/table1}
CPUS=${CPUS:-2}
PORT=${RAY_PORT:-6390}
PY=${PYTHON:-.venv/bin/python}
source results/ray_head.sh
start_ray_head /tmp/ray-table1

COMMON=(--address "127.0.0.1:$PORT" --experiment table1 --replicates 3
        --tracking-uri "sqlite:///$RUNS/mlflow.db" --storage "$RUNS/ray" --progress-every 600)
# With RESUME set, a sweep that has started is resumed; one that has not starts.
resume() { [ -n "${RESUME:-}" ] && [ -d "$RUNS/ray/$1" ] && echo --resume; }
"$PY" sweeps/expmod_grid.py "${COMMON[@]}" --name table1-pairs $(resume table1-pairs) \
    --split pairs || echo "table1-pairs did not finish every trial (exit $?)"
"$PY" sweeps/expmod_grid.py "${COMMON[@]}" --name table1-classes $(resume table1-classes) \
    --split classes \
    --pairs 3,4 5,4 7,7 4,5 8,9 --primes 113 --epochs 20000 \
    || echo "table1-classes did not finish every trial (exit $?)"
