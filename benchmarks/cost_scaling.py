"""How a toy comparison cell's cost grows with seeds and iterations: wall seconds of one pipeline job.

Runs ``keras-sngan train`` as the pipeline's ``train_compare`` job does (one
process, every seed of the cell, default-profile model: 8gaussians, 256-wide
MLPs, batch 256, 5 critic steps, 10 epochs) for each (seeds, iterations)
point, one process at a time, and reports its wall time from the process's
own timing record, with a least-squares fit ``wall = a + b * seeds + c *
seeds * iterations``: ``a`` is paid once per job, ``b`` once per seed, ``c``
per generator iteration. Prints JSON.

Usage:
    python benchmarks/cost_scaling.py --method sn > benchmarks/results/cost_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

from keras_sngan.poster.plumbing import timing

POINTS = [(1, 600), (3, 600), (5, 600), (1, 2000), (1, 5000)]


def run_cell(method: str, seeds: int, iterations: int, out: str) -> dict:
    extra = ["--optimizer", "rmsprop", "--learning-rate", "5e-5", "--epsilon", "1e-10"] if method == "clip" else \
        ["--epsilon", "1e-8", "--gp-weight", "0.1"]
    command = [
        os.path.join(os.path.dirname(sys.executable), "keras-sngan"), "train",
        "--out-dir", os.path.join(out, "seed{seed}"), "--checkpoint-dir", os.path.join(out, "ckpt{seed}"),
        "--seed", *map(str, range(seeds)), "--dataset", "8gaussians", "--method", method,
        "--iterations", str(iterations), "--batch-size", "256", "--width", "256", "--depth", "3",
        "--epochs", "10", "--stats-every", "10", "--threads", "1", "--verbose", "0", *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    (record,) = timing.parse(done.stderr)
    return {"seeds": seeds, "iterations": iterations, "wall_s": record["wall_s"], "cpu_s": record["cpu_s"],
            "phases": record["phases"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="sn")
    parser.add_argument("--points", default=",".join(f"{s}x{i}" for s, i in POINTS), help="SEEDSxITERATIONS,...")
    args = parser.parse_args(argv)
    rows = []
    for point in args.points.split(","):
        seeds, iterations = map(int, point.split("x"))
        with tempfile.TemporaryDirectory() as out:
            rows.append(run_cell(args.method, seeds, iterations, out))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    design = np.array([[1.0, r["seeds"], r["seeds"] * r["iterations"]] for r in rows])
    (a, b, c), *_ = np.linalg.lstsq(design, np.array([r["wall_s"] for r in rows]), rcond=None)
    for r, fit in zip(rows, design @ np.array([a, b, c])):
        r["fit_s"] = round(float(fit), 1)
    print(json.dumps({
        "benchmark": "toy_cell_cost_scaling", "method": args.method,
        "model": "8gaussians, 256-wide 3-layer MLPs, batch 256, n_critic 5 (default profile)",
        "fit": {"per_job_s": round(float(a), 2), "per_seed_s": round(float(b), 2), "per_iteration_ms": round(1e3 * float(c), 2)},
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "results": rows,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
