"""Where a pipeline run's time went: one row per rule, from its jobs' logs and Snakemake benchmark files.

Every ``keras-sngan`` command ends its log with a timing record
(:mod:`keras_sngan.poster.plumbing.timing`): wall and CPU seconds of the process
and the seconds of its phases (``import``, ``build``, ``tracing``,
``training``, ``diagnostics``, ``evaluation``, ``io``). This script adds
them up per rule for a results directory, with Snakemake's own wall time
per job (``benchmarks/**.tsv``), and prints JSON (``--markdown``: the
README's table). ``fixed_s_per_job`` is what a job pays whatever its
length: ``import + build + tracing + io``; ``other`` is wall time no
phase claimed (figure drawing, table building, shell and Snakemake
overhead); ``warm_jobs``: jobs forked from a warm-start server
(``keras_sngan/poster/warm_start.py``), whose ``import`` is the client's start-up.

Usage:
    python benchmarks/pipeline_profile.py results > benchmarks/results/pipeline_profile.json
    python benchmarks/pipeline_profile.py results --markdown
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys

PHASES = ("import", "build", "tracing", "training", "diagnostics", "evaluation", "io")
FIXED = ("import", "build", "tracing", "io")


def rule_of(relative: str) -> str:
    """The rule of a job from its log path under ``logs/`` (the pipeline's log layout)."""
    parts = relative.split("/")
    if parts[0] == "train":
        return f"train_{parts[1]}"
    return {"figures": "figure", "overfitting": "overfit"}.get(parts[0], parts[0].removesuffix(".log"))


def profile(results: str) -> dict:
    from keras_sngan.poster.plumbing import timing

    logs = os.path.join(results, "logs")
    rules: dict[str, dict] = {}
    for path in sorted(glob.glob(os.path.join(logs, "**", "*.log"), recursive=True)):
        relative = os.path.relpath(path, logs)
        rule = rule_of(relative)
        row = rules.setdefault(rule, {"jobs": 0, "runs": 0, "warm_jobs": 0, "snakemake_wall_s": 0.0, "wall_s": 0.0,
                                      "cpu_s": 0.0, **{p: 0.0 for p in PHASES}})
        with open(path, errors="replace") as handle:
            records = timing.parse(handle.read())
        bench = os.path.join(results, "benchmarks", relative[: -len(".log")] + ".tsv")
        if os.path.exists(bench):
            with open(bench) as handle:
                row["snakemake_wall_s"] += float(next(csv.DictReader(handle, delimiter="\t"))["s"])
        row["jobs"] += 1
        for record in records:
            row["runs"] += 1 if record["command"] != "train" else 0
            row["wall_s"] += record["wall_s"]
            row["cpu_s"] += record["cpu_s"]
            row["warm_jobs"] += int(bool(record.get("warm_start")))  # forked from a warm server
            for name, seconds in record["phases"].items():
                row[name] = row.get(name, 0.0) + seconds
    for rule, row in rules.items():
        run_dirs = glob.glob(os.path.join(results, "runs", rule.removeprefix("train_"), "**", "run.json"), recursive=True)
        if rule.startswith("train_"):
            row["runs"] = len(run_dirs)
        row["other"] = max(0.0, row["wall_s"] - sum(row[p] for p in PHASES))
        row["fixed_s_per_job"] = sum(row[p] for p in FIXED) / max(row["jobs"], 1)
        row["fixed_s_per_run"] = sum(row[p] for p in FIXED) / max(row["runs"], 1)
        for key, value in row.items():
            if isinstance(value, float):
                row[key] = round(value, 1)
    total = {k: round(sum(r[k] for r in rules.values()), 1)
             for k in ("jobs", "warm_jobs", "snakemake_wall_s", "wall_s", "cpu_s", *PHASES, "other")}
    return {"results": os.path.abspath(results), "rules": rules, "total": total}


def markdown(data: dict) -> str:
    head = ["rule", "jobs", "wall s", "CPU s", *PHASES, "other", "fixed s / job"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = sorted(data["rules"].items(), key=lambda item: -item[1]["wall_s"])
    for rule, row in order + [("**total**", data["total"])]:
        cells = [rule, row["jobs"], row["wall_s"], row["cpu_s"], *(row[p] for p in PHASES), row["other"],
                 row.get("fixed_s_per_job", "")]
        lines.append("| " + " | ".join(f"{c:.0f}" if isinstance(c, float) else str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a results directory of the pipeline (with logs/ and benchmarks/)")
    parser.add_argument("--markdown", action="store_true", help="print the per-rule table instead of JSON")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.results, "logs")):
        print(f"pipeline_profile: `results`={args.results!r} has no logs/ directory (is it a pipeline's results?)", file=sys.stderr)
        return 2
    data = profile(args.results)
    print(markdown(data) if args.markdown else json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
