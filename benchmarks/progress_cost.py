"""Cost of one progress measurement (grokcore.progress.progress_measures) at p = 113.

    PYTHONPATH=. python benchmarks/progress_cost.py [--p 113] [--dtype float32] [--threads 1]

Prints the median wall time over a few repeats and the peak extra resident memory of the
measurements (ru_maxrss before and after). Libraries are warmed up first (a measurement at p = 7
and one forward pass at p), so the figure is what a measurement adds to a training process.
"""

import argparse
import resource
import statistics
import time

import torch

from grokcore.config import RunConfig
from grokcore.model import Transformer
from grokcore.progress import progress_measures
from grokcore.tasks import build_dataset, validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, default=113)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = validate(RunConfig(p=args.p, dtype=args.dtype))
    dataset = build_dataset(cfg)
    model = Transformer.for_run(cfg, dataset)
    small = validate(RunConfig(p=7))
    small_data = build_dataset(small)
    progress_measures(Transformer.for_run(small, small_data), small, small_data)
    with torch.no_grad():
        model.forward_last(dataset.inputs)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        progress_measures(model, cfg, dataset)
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"p={args.p} dtype={args.dtype} threads={args.threads} inputs={args.p ** 2}: "
          f"median {1000 * statistics.median(times):.0f} ms (min {1000 * min(times):.0f} ms), "
          f"peak extra memory {(after - before) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
