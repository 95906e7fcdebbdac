#!/usr/bin/env bash
# Table 1 at 15 replicates a row (issue 23): the ten pairs-split (a, b, p) rows of the seed paper
# at its own settings, as results/table1/run.sh runs them (frac 0.3, lr 1e-3, weight decay 1,
# float32, 40,000 epochs, an evaluation every 100, stop 5 evaluations after grokking), with new
# seeds, so the three committed replicates of results/table1 stay an independent check:
# replicate j (0..14) trains with weight seed 1002+j and split seed 601+j.
# The replicates run in ROUNDS of 3 (sweeps table1_15-r0 .. table1_15-r4, each the ten rows x 3),
# so an interruption leaves every row with about as many runs as the others.
# It takes many hours on 2 cores. Run it from a clean checkout (each run is tagged with the
# commit it ran), in the background:
#   nohup bash results/table1_15/run.sh > ~/grok-runs/table1_15/run.log 2>&1 &
# and after an interruption continue where it stopped with
#   RESUME=1 nohup bash results/table1_15/run.sh >> ~/grok-runs/table1_15/run.log 2>&1 &
# Everything it writes (Ray's trial state, the MLflow store) is under $GROK_RUNS, outside the
# work tree. CPUS sets how many trials run at once (one CPU each); NICE (default 10) lowers their
# priority so that the machine stays usable. Then results/table1_15/make.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
RUNS=${GROK_RUNS:-$HOME/grok-runs/table1_15}
CPUS=${CPUS:-2}
PORT=${RAY_PORT:-6391}
ROUNDS=${ROUNDS:-5}
PY=${PYTHON:-.venv/bin/python}
source results/ray_head.sh
start_ray_head /tmp/ray-table1_15

COMMON=(--address "127.0.0.1:$PORT" --experiment table1_15 --split pairs --replicates 3
        --tracking-uri "sqlite:///$RUNS/mlflow.db" --storage "$RUNS/ray" --progress-every 600)
# With RESUME set, a sweep that has started is resumed; one that has not starts.
resume() { [ -n "${RESUME:-}" ] && [ -d "$RUNS/ray/$1" ] && echo --resume; }
for ((r = 0; r < ROUNDS; r++)); do
    name="table1_15-r$r"
    "$PY" sweeps/expmod_grid.py "${COMMON[@]}" --name "$name" $(resume "$name") \
        --seed $((1002 + 3 * r)) --data-seed $((601 + 3 * r)) \
        || echo "$name did not finish every trial (exit $?)"
done
