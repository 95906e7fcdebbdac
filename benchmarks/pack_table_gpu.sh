#!/usr/bin/env bash
# On a machine with a GPU, in one call of under 8 minutes (device time is scarce):
#   1. benchmarks/pack_speed.py --device cuda: member-epochs per second of packs of K = 1, 4, 16,
#      64, 256 against one run, p = 113 and 31, float32 and float64 (about 3 minutes);
#   2. benchmarks/pack_table.py --device cuda: Table 1's ten pairs-split rows x 15 replicates as
#      packs (two: the nine p = 113 rows, and p = 101), end to end, within a 240 s budget (runs
#      still training then are censored there, and the table says how far they got).
# Needs torch with CUDA and this checkout's dependencies (no Ray). Raw output goes to $OUT (the
# device machine's folder that comes back), else benchmarks/results; commit it as
# benchmarks/results/pack_speed_gpu.* and pack_table_gpu.*, beside gpu_check_h200.*.
#   bash benchmarks/pack_table_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no GPU'" || exit 2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/pack_gpu_info.txt" 2>&1
timeout 210 "$PY" benchmarks/pack_speed.py --device cuda --ps 113 31 --ks 1 4 16 64 256 \
    --rounds 2 --epochs 100 --eval-every 50 --budget-s 20 --json "$OUT/pack_speed_gpu.json" \
    2>&1 | tee "$OUT/pack_speed_gpu.txt"
timeout 270 "$PY" benchmarks/pack_table.py --device cuda --replicates 15 --budget-s 240 \
    --json "$OUT/pack_table_gpu.json" 2>&1 | tee "$OUT/pack_table_gpu.txt"
