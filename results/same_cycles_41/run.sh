#!/usr/bin/env bash
# A second follow-up at 41, after results/cycles_41/: is it the number of cycles of z -> z^c
# (analysis.renamings.relative_cycles) that decides how often a row groks, or something about
# the one row it was tested with?
#
# results/cycles_41/ held the relative order at 2 and found (1, 21) (31 cycles) grokking 48 of
# 64 times against 25 of 64 for (1, 39) (22 cycles). But (1, 39) is x + 1/y, inversion, and
# (1, 21) is x + y up to the sign of y: the two rows differ in more than their cycles. At 41 two
# other rows of order 2 share a cycle count with one of them or fall between:
#   (1, 19)  c = 19, order 2, 22 cycles, as (1, 39), but not inversion
#   (1, 11)  c = 11, order 2, 26 cycles, between 22 and 31
# Decided before these runs:
#   the test: (1, 19) against (1, 39) (results/cycles_41/trials.csv, the same seeds), paired by
#   seed and data seed (replicate j of both rows trains on the same pairs): the exact McNemar
#   test, two-sided (python -m analysis.outcomes --by relative_cycles --between
#   relative_exponent --paired, in results/same_cycles_41/make.sh); Fisher's test beside it.
#   If cycles decide, the two rows grok alike: a p under 0.05 says they do not decide alone
#   (something of inversion does), a larger p is no evidence against them (not proof of it).
#   Secondary: the four rows of order 2 by cycles (22, 22, 26, 31), grokked by the end and
#   Kaplan-Meier; cycles predict (1, 11) between (1, 39)/(1, 19) and (1, 21).
# The recipe is that of results/cycles_41/run.sh (the phase diagram's: pairs split, frac 0.5,
# lr 3e-3, weight decay 3, float32, 5,000 epochs, an evaluation every 10, no figures);
# replicate j trains with weight seed 3 + j and split seed 3 + j (j = 0..63), in ROUNDS of 16
# replicates of both rows (sweeps same_cycles_41-r0 .. r3), so an interruption leaves the two
# rows with as many runs. Hours on 2 cores; run it from a clean checkout, in the background:
#   nohup bash results/same_cycles_41/run.sh > ~/grok-runs/same_cycles_41/run.log 2>&1 &
# after an interruption:
#   RESUME=1 nohup bash results/same_cycles_41/run.sh >> ~/grok-runs/same_cycles_41/run.log 2>&1 &
# The MLflow store and Ray's trial state are under $GROK_RUNS (default
# ~/grok-runs/same_cycles_41), outside the work tree. CPUS trials at once (default 2), NICE
# (default 10). Then results/same_cycles_41/make.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
RUNS=${GROK_RUNS:-$HOME/grok-runs/same_cycles_41}
CPUS=${CPUS:-2}
PORT=${RAY_PORT:-6394}
ROUNDS=${ROUNDS:-4}
PY=${PYTHON:-.venv/bin/python}
source results/ray_head.sh
start_ray_head /tmp/ray-same_cycles_41

RECIPE=(--primes 41 --pairs 1,19 1,11 --split pairs --fracs 0.5 --lr 3e-3 --weight-decay 3
        --epochs 5000 --eval-every 10 --checkpoint-every 1000 --replicates 16 --figures none)
COMMON=(--address "127.0.0.1:$PORT" --experiment same_cycles_41
        --tracking-uri "sqlite:///$RUNS/mlflow.db" --storage "$RUNS/ray" --progress-every 600)
resume() { [ -n "${RESUME:-}" ] && [ -d "$RUNS/ray/$1" ] && echo --resume; }
for ((r = 0; r < ROUNDS; r++)); do
    name="same_cycles_41-r$r"
    "$PY" sweeps/expmod_grid.py "${RECIPE[@]}" "${COMMON[@]}" --name "$name" $(resume "$name") \
        --seed $((3 + 16 * r)) --data-seed $((3 + 16 * r)) \
        || echo "$name did not finish every trial (exit $?)"
done
