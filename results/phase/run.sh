#!/usr/bin/env bash
# The phase diagram of grokking (issue 23): (x^a + y^b) mod p for all 81 exponent pairs (a, b) in
# 1..9 x 1..9, 3 replicates each (weight seed i, split seed i, i = 0, 1, 2), as separate sweeps
# of one experiment 'phase', in this order:
#   pairs-31 pairs-37 pairs-41 pairs-43   split by pairs (x, y), as the seed does, at 4 primes
#   classes-31 classes-41                 split by classes (x^a, y^b): no test pair has a twin
#   float64-31                            the whole model in float64
#   frac-31                               data fractions 0.4 and 0.6 (0.5 is pairs-31)
#   order-41                              a follow-up: the 16 pairs of bijective exponents
#                                         {1, 3, 7, 9} at 41, 12 more replicates each (seeds
#                                         3..14), to test whether grok time grows with the order
#                                         of z -> z^(b/a) (analysis.hazard's relative_order)
# Why these primes: x -> x^a is a bijection of Z_p iff gcd(a, p - 1) = 1, and p - 1 factors
# differently for each (30 = 2*3*5, 36 = 2^2*3^2, 40 = 2^3*5, 42 = 2*3*7), so the bijective
# exponents in 1..9 differ: {1, 7} at 31, {1, 5, 7} at 37, {1, 3, 7, 9} at 41, {1, 5} at 43.
# The recipe, one for all four primes so that they compare: frac 0.5, lr 3e-3, weight decay 3,
# float32, 5,000 epochs, an evaluation every 10, stop 5 evaluations after the threshold holds.
# Why: in pilots (seeds 0 and 1) (1, 1) grokked at epochs 400-1040 (31), 380-390 (37), 300-320
# (41), 220-360 (43), well inside the budget. (At 23 it did not grok in 5,000 epochs at frac 0.5,
# and at 29 it took up to 3,800: neither was taken.) Figures are not drawn (--figures none): the
# histories are in MLflow, and ~2,400 runs x 1.3 s of drawing is better spent training.
# Run from a clean checkout, in the background (hours on 2 cores):
#   nohup bash results/phase/run.sh > ~/grok-runs/phase/run.log 2>&1 &
# after an interruption:  RESUME=1 nohup bash results/phase/run.sh >> ~/grok-runs/phase/run.log 2>&1 &
# PARTS="pairs-31 classes-31" runs only those parts. CPUS trials at once (default 1, so that it
# can share the machine with results/table1_15/run.sh), NICE (default 10). Then results/phase/make.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
RUNS=${GROK_RUNS:-$HOME/grok-runs/phase}
CPUS=${CPUS:-1}
PORT=${RAY_PORT:-6392}
PARTS=${PARTS:-pairs-31 pairs-37 pairs-41 pairs-43 classes-31 classes-41 float64-31 frac-31 order-41}
PY=${PYTHON:-.venv/bin/python}
source results/ray_head.sh
start_ray_head /tmp/ray-phase

RECIPE=(--a 1 2 3 4 5 6 7 8 9 --b 1 2 3 4 5 6 7 8 9 --fracs 0.5 --lr 3e-3 --weight-decay 3
        --epochs 5000 --eval-every 10 --checkpoint-every 1000 --replicates 3 --seed 0 --data-seed 0 --figures none)
COMMON=(--address "127.0.0.1:$PORT" --experiment phase --tracking-uri "sqlite:///$RUNS/mlflow.db"
        --storage "$RUNS/ray" --progress-every 600)
resume() { [ -n "${RESUME:-}" ] && [ -d "$RUNS/ray/$1" ] && echo --resume; }
for part in $PARTS; do
    case "$part" in
        pairs-*)   extra=(--primes "${part#pairs-}" --split pairs) ;;
        classes-*) extra=(--primes "${part#classes-}" --split classes) ;;
        float64-*) extra=(--primes "${part#float64-}" --split pairs --dtype float64) ;;
        frac-*)    extra=(--primes "${part#frac-}" --split pairs --fracs 0.4 0.6) ;;
        order-*)   extra=(--primes "${part#order-}" --split pairs --a 1 3 7 9 --b 1 3 7 9
                          --replicates 12 --seed 3 --data-seed 3) ;;
        *) echo "unknown part $part"; exit 2 ;;
    esac
    name="phase-$part"
    "$PY" sweeps/expmod_grid.py "${RECIPE[@]}" "${COMMON[@]}" "${extra[@]}" --name "$name" \
        $(resume "$name") || echo "$name did not finish every trial (exit $?)"
done
