#!/usr/bin/env bash
# A follow-up to the phase diagram's order-41 finding: is it the order of c that slows grokking,
# or the number of cycles of z -> z^c (analysis.renamings.relative_cycles)?
#
# Among the bijective rows at 41, a != b, the rows of relative order 4 grokked less often than
# those of order 2 (results/phase/order_41.txt). The row (a, b) is the row (1, c) renamed,
# c = b / a modulo 40, and the two operands share one embedding table: a stored feature f serves
# both operands where f(y^c) = f(y), so the number of cycles of z -> z^c on Z_41 counts what
# they can share. At 41 that number falls with the order (41, 23-25, 14 for orders 1, 2, 4), so
# the phase diagram cannot tell the two apart; within order 2 it spans 22 to 31. This part
# holds the order at 2 and varies the cycles:
#   (1, 21)  c = 21, order 2, 31 cycles (z^21 = z for the 20 squares and 0)
#   (1, 39)  c = 39 = -1, order 2, 22 cycles (z -> 1/z fixes only 0, 1 and -1)
# Decided before these runs:
#   the test: Fisher's exact test (two-sided) of grokked by the end, (1, 21) against (1, 39)
#   (python -m analysis.outcomes --between relative_cycles, in results/cycles_41/make.sh);
#   cycles predict (1, 21) groks more often (order 1 with 41 cycles grokked 48 of 48, order 2
#   with 23-25 about 57%, order 4 with 14 about 30%); order predicts the two alike.
#   A Cox model of C(relative_cycles) and the Kaplan-Meier curves are the secondary views.
# The recipe is the phase diagram's (results/phase/run.sh): pairs split, frac 0.5, lr 3e-3,
# weight decay 3, float32, 5,000 epochs, an evaluation every 10, no figures; replicate j trains
# with weight seed 3 + j and split seed 3 + j (j = 0..63), in ROUNDS of 16 replicates of both
# rows (sweeps cycles_41-r0 .. r3), so an interruption leaves the two rows with as many runs.
# Hours on 2 cores; run it from a clean checkout, in the background:
#   nohup bash results/cycles_41/run.sh > ~/grok-runs/cycles_41/run.log 2>&1 &
# after an interruption:
#   RESUME=1 nohup bash results/cycles_41/run.sh >> ~/grok-runs/cycles_41/run.log 2>&1 &
# The MLflow store and Ray's trial state are under $GROK_RUNS (default ~/grok-runs/cycles_41),
# outside the work tree. CPUS trials at once (default 2), NICE (default 10). Then
# results/cycles_41/make.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
RUNS=${GROK_RUNS:-$HOME/grok-runs/cycles_41}
CPUS=${CPUS:-2}
PORT=${RAY_PORT:-6393}
ROUNDS=${ROUNDS:-4}
PY=${PYTHON:-.venv/bin/python}
source results/ray_head.sh
start_ray_head /tmp/ray-cycles_41

RECIPE=(--primes 41 --pairs 1,21 1,39 --split pairs --fracs 0.5 --lr 3e-3 --weight-decay 3
        --epochs 5000 --eval-every 10 --checkpoint-every 1000 --replicates 16 --figures none)
COMMON=(--address "127.0.0.1:$PORT" --experiment cycles_41 --tracking-uri "sqlite:///$RUNS/mlflow.db"
        --storage "$RUNS/ray" --progress-every 600)
resume() { [ -n "${RESUME:-}" ] && [ -d "$RUNS/ray/$1" ] && echo --resume; }
for ((r = 0; r < ROUNDS; r++)); do
    name="cycles_41-r$r"
    "$PY" sweeps/expmod_grid.py "${RECIPE[@]}" "${COMMON[@]}" --name "$name" $(resume "$name") \
        --seed $((3 + 16 * r)) --data-seed $((3 + 16 * r)) \
        || echo "$name did not finish every trial (exit $?)"
done
