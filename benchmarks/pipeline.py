"""The pipeline with and without warm start, side by side: wall time, job seconds and CPU seconds.

Runs ``snakemake --cores N --forceall`` of a profile into two scratch
directories, alternating ``warm_start=true`` and ``warm_start=false``
(A B A B ..., so a drifting machine affects both alike), and prints JSON:
per run the wall time of the whole ``snakemake`` process, the sum of the
jobs' wall and CPU seconds and of their ``import`` phase from their timing
records (``benchmarks/pipeline_profile.py``), and how many jobs ran warm;
then the median of each and the warm / cold ratios pair by pair. The
outputs themselves are compared too: every CSV and JSON file but those that
hold timings must be identical in the two settings (``identical_outputs``).

Usage (the default profile takes about an hour per pair on 2 cores)::

    python benchmarks/pipeline.py --configfile config/test.yaml --pairs 3 > benchmarks/results/pipeline_test_profile.json
    python benchmarks/pipeline.py --pairs 1 > benchmarks/results/pipeline.json
"""

from __future__ import annotations

import argparse
import filecmp
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline_profile import profile  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING_FILES = ("summary.md",)  # Markdown tables that print seconds


def run_once(results: str, warm: bool, configfile: str | None, cores: int, index: int) -> dict:
    command = [os.path.join(os.path.dirname(sys.executable), "snakemake"), "--cores", str(cores), "--forceall"]
    if configfile:
        command += ["--configfile", configfile]
    command += ["--config", f"results={results}", f"warm_start={'true' if warm else 'false'}"]
    # Each run has a server of its own (the variable is part of a server's identity; an earlier
    # run's server idles out unused): no run finds a server warmed up by another.
    env = dict(os.environ, KERAS_SNGAN_BENCHMARK_RUN=str(index))
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"pipeline run failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    total = profile(results)["total"]
    return {"warm_start": warm, "wall_s": round(wall, 1), "jobs": total["jobs"], "warm_jobs": total["warm_jobs"],
            "job_wall_s": total["wall_s"], "job_cpu_s": total["cpu_s"], "import_s": total["import"]}


def _timing(name: str) -> bool:
    return "second" in name or name.startswith("wall")


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not _timing(k)}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def outputs_identical(a: str, b: str) -> list[str]:
    """Files (CSV, JSON, Markdown) that differ between two results directories.

    CSV columns and JSON keys that hold seconds (``*second*``, ``wall*``) are
    left out; so are the Markdown tables that print them (``TIMING_FILES``),
    the logs and Snakemake's benchmark files.
    """
    import pandas as pd

    differ = []
    for path in sorted(glob.glob(os.path.join(a, "**", "*.*"), recursive=True)):
        relative = os.path.relpath(path, a)
        if not path.endswith((".csv", ".json", ".md")) or relative.startswith(("logs", "benchmarks")):
            continue
        other = os.path.join(b, relative)
        if not os.path.exists(other):
            differ.append(relative)
        elif path.endswith(".csv"):
            x, y = pd.read_csv(path), pd.read_csv(other)
            keep = [c for c in x.columns if not _timing(c)]
            if list(x.columns) != list(y.columns) or not x[keep].equals(y[keep]):
                differ.append(relative)
        elif path.endswith(".json"):
            with open(path) as f, open(other) as g:
                if _without_timings(json.load(f)) != _without_timings(json.load(g)):
                    differ.append(relative)
        elif os.path.basename(path) not in TIMING_FILES and not filecmp.cmp(path, other, shallow=False):
            differ.append(relative)
    return differ


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default=None, help="a profile layered on config/config.yaml (default: none)")
    parser.add_argument("--pairs", type=int, default=1, help="warm / cold pairs (default 1)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.cores < 1:
        parser.error(f"`--pairs` and `--cores` must be >= 1, received {args.pairs} and {args.cores}")
    scratch = tempfile.mkdtemp(prefix="pipeline-bench-")
    runs = []
    try:
        for _ in range(args.pairs):
            for warm in (True, False):
                results = os.path.join(scratch, "warm" if warm else "cold")
                shutil.rmtree(results, ignore_errors=True)
                runs.append(run_once(results, warm, args.configfile, args.cores, len(runs)))
        differ = outputs_identical(os.path.join(scratch, "warm"), os.path.join(scratch, "cold"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    keys = ("wall_s", "job_wall_s", "job_cpu_s", "import_s")
    median = {setting: {k: round(statistics.median(r[k] for r in runs if r["warm_start"] == (setting == "warm")), 1)
                        for k in keys} for setting in ("warm", "cold")}
    pairs = list(zip(runs[0::2], runs[1::2]))
    ratios = {k: [round(w[k] / c[k], 3) for w, c in pairs] for k in ("wall_s", "job_wall_s", "job_cpu_s")}
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "command": f"snakemake --cores {args.cores} --forceall" + (f" --configfile {args.configfile}" if args.configfile else ""),
        "runs": runs, "median": median, "warm_over_cold": ratios,
        "identical_outputs": not differ, "differing_outputs": differ,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
