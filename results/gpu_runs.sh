#!/usr/bin/env bash
# The decisive runs (results/table1_15, results/phase) and the pack benchmark on ONE GPU machine
# in one call of about 9 minutes, without Ray or MLflow there (python -m grokcore grid):
#   0. benchmarks/pack_speed.py on SPEED_DEVICE (default cuda), SPEED_S seconds at most, first,
#      while the GPU is quiet;
#   1. Table 1 at 15 replicates: results/table1_15/grid.json (the grid of results/table1_15/run.sh,
#      written by sweeps/expmod_grid.py --split pairs --replicates 15 --seed 1002 --data-seed 601
#      --write-grid ...) or TABLE_GRID, budget TABLE_S seconds;
#   2. the phase diagram: results/phase/grid-<part>.json (the parts of results/phase/parts.sh, in
#      its order of priority) or PHASE_GRIDS, budget PHASE_S seconds, history kept every 100
#      epochs (the end values use every evaluation) so that the runs fit in what comes back. The
#      classes-split parts come last: their runs differ in size, so they form many small packs.
# Runs a budget stops are marked UNFINISHED and are not imported as ended. Everything lands in
# $OUT (the device machine's folder that comes back; default /tmp/gpu-runs): the logs, the
# benchmark's JSON, and each grid's run folders as <name>_runs.tar.xz. Back here:
#   bash results/import_gpu_runs.sh FOLDER      (FOLDER: where those files are)
# which logs the runs into the MLflow stores of the run.sh scripts and runs their make.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-runs}
WORK=${WORK:-/tmp/gpu-work}
PY=${PYTHON:-python3}
source results/phase/parts.sh
PARTS=${PARTS:-$PHASE_PARTS}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
started=$(date +%s)
stamp() { echo "[$(( $(date +%s) - started )) s] $*"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  nproc; } > "$OUT/gpu_info.txt"

# The benchmark's sets, ';' between them, each SPEED_S seconds at most (SPEED_SETS='': none).
# The first times a stack of one against the own step (a pack's last member takes its own).
SPEED_SETS=${SPEED_SETS---ps 113 31 --dtypes float32 float64 --stack-of-one;--ps 113 31 --dtypes float32 float64 --ks 1 4 16 64 256}
stamp "pack speed" | tee "$OUT/pack_speed_gpu.txt"
IFS=';' read -ra speed_sets <<< "$SPEED_SETS"
for i in "${!speed_sets[@]}"; do
    # shellcheck disable=SC2086  # each set is a list of options
    timeout "${SPEED_S:-80}" "$PY" benchmarks/pack_speed.py --device "${SPEED_DEVICE:-cuda}" \
        ${speed_sets[$i]} --rounds 2 --epochs 100 --eval-every 50 --budget-s 10 \
        --json "$OUT/pack_speed_gpu_$i.json" 2>&1 | tee -a "$OUT/pack_speed_gpu.txt"
done

# TABLE_GRID / PHASE_GRIDS: other grid files (TABLE_GRID=none: no table). The runs that the
# MLflow store has not ended, as a grid file: sweeps/expmod_grid.py --from-grid GRID...
# --skip-ended --experiment NAME --tracking-uri URI --write-grid FILE. CONCURRENT=1 trains the
# table and the phase grids side by side, each with its own budget from its own start; the phase
# PHASE_DELAY seconds after the table (so that the table's packs have the GPU to themselves while
# all their members train).
TABLE_GRID=${TABLE_GRID:-results/table1_15/grid.json}
PHASE_GRIDS=${PHASE_GRIDS:-}
if [ -z "$PHASE_GRIDS" ]; then
    for part in $PARTS; do PHASE_GRIDS+=" results/phase/grid-$part.json"; done
fi
table() {
    [ "$TABLE_GRID" = none ] && return
    stamp "table1_15: $TABLE_GRID" | tee "$OUT/table1_15_gpu.txt"
    "$PY" -m grokcore grid "$TABLE_GRID" --out "$WORK/table1_15" --workers "${TABLE_WORKERS:-2}" \
        --max-pack "${TABLE_MAX_PACK:-256}" --budget-s "${TABLE_S:-220}" --no-weights \
        --pack-engine "${PACK_ENGINE:-auto}" 2>&1 | tee -a "$OUT/table1_15_gpu.txt"
}
phase() {
    stamp "phase:$PHASE_GRIDS" | tee "$OUT/phase_gpu.txt"
    # shellcheck disable=SC2086  # a list of files
    "$PY" -m grokcore grid $PHASE_GRIDS --out "$WORK/phase" --workers "${PHASE_WORKERS:-6}" \
        --max-pack "${PHASE_MAX_PACK:-256}" --budget-s "${PHASE_S:-190}" --history-every 100 \
        --no-weights --pack-engine "${PACK_ENGINE:-auto}" 2>&1 | tee -a "$OUT/phase_gpu.txt"
}
if [ -n "${CONCURRENT:-}" ]; then
    table & { sleep "${PHASE_DELAY:-0}"; phase; } & wait
else
    table; phase
fi

# At most 8 files of 16 MiB come back: an archive over 15 MiB is cut into parts (cat them).
for name in table1_15 phase; do
    [ -d "$WORK/$name" ] || continue
    XZ_OPT="-${XZ_LEVEL:-6} -T0" tar -C "$WORK" -cJf "$OUT/${name}_runs.tar.xz" "$name"
    if [ "$(stat -c %s "$OUT/${name}_runs.tar.xz")" -gt $((15 * 1024 * 1024)) ]; then
        split -b 15m "$OUT/${name}_runs.tar.xz" "$OUT/${name}_runs.tar.xz.part-"
        rm "$OUT/${name}_runs.tar.xz"
    fi
done
stamp "done" | tee -a "$OUT/phase_gpu.txt"
ls -la "$OUT"
