#!/usr/bin/env bash
# (3, 4) at p = 113, split by classes, at the Table 1 classes sweep's settings but 40,000 epochs
# instead of 20,000: does a longer budget make it grok? Three replicates as in the sweep
# (seed 999+i, data_seed 598+i), run side by side on one GPU (an NVIDIA H200 lent to a session;
# float32 on cuda, so the epochs are cuda's rounding, see README "On a GPU"). Each took 143-145 s.
# history_s*.csv and summary_s*.json are the runs' own files (summary: the CLI's --json line).
set -euo pipefail
cd "$(dirname "$0")/../../.."
for i in 0 1 2; do
    s=$((999 + i)); d=$((598 + i))
    python -m grokcore train --p 113 --a 3 --b 4 --frac 0.3 --split classes --epochs 40000 \
        --eval-every 100 --measure-every 1000 --stop-after-grok 5 --seed $s --data-seed $d \
        --device cuda --json --out "${OUT:-/tmp}/classes_a3b4_s$s" > "${OUT:-/tmp}/s$s.log" 2>&1 &
done
wait
