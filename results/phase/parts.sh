# The phase grids' parts (results/phase/grid-<part>.json) in their order of priority, for the
# scripts that train what is left of them: results/rest.sh and results/gpu_runs.sh.
PHASE_PARTS="pairs-31 pairs-37 pairs-41 pairs-43 float64-31 frac-31 classes-31 classes-41 order-41"
