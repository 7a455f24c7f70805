"""Where a job's time goes: the small timing record every ``keras-sngan`` command writes.

The command line (:mod:`keras_sngan.poster.cli`) ends every command by printing one
line to standard error::

    keras-sngan timing {"command": "train", "wall_s": ..., "cpu_s": ..., "phases": {...}, "warm_start": false}

which the pipeline's rules send to the job's log. ``wall_s`` runs from the
start of the process (read from the operating system, so the interpreter's
own start-up counts), ``cpu_s`` is the process's user + system CPU time, and
``phases`` holds the seconds of the named phases the library measured with
:func:`phase` (``import``: process start until the command's code runs;
``build``: models, data and optimizers; ``tracing``: the first epoch's
extra time over a steady one (tracing and compiling the step);
``training``: the training step; ``diagnostics``: the per-iteration
recorder; ``io``: checkpoints and outputs; ``evaluation``). Phases nest
nowhere: a measured phase excludes the phases measured inside it.
``warm_start`` says whether the command ran in a process forked from a warm
server (:mod:`keras_sngan.poster.warm_start`); its seconds then count from the
client's start.
``benchmarks/pipeline_profile.py`` reads these lines back from a results
directory's logs into the per-rule profile of the README.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import time

PREFIX = "keras-sngan timing "
_phases: dict[str, float] = {}
_earlier = [0.0, 0.0]  # wall and CPU seconds of a process that started this one's work (warm start)
_warm = [False]
_stack: list[list] = []  # [name, start, seconds of phases measured inside]


def process_start_seconds_ago() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere since this module was imported)."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


def started_before_this_process(wall_seconds: float, cpu_seconds: float) -> None:
    """Count the record from an earlier start: a warm-start client's (:mod:`keras_sngan.poster.warm_start`).

    The client's seconds until it handed the command over are added to
    ``wall_s`` and ``cpu_s`` and charged to ``import``.
    """
    _earlier[0] += float(wall_seconds)
    _earlier[1] += float(cpu_seconds)
    _warm[0] = True
    add("import", wall_seconds)


def add(name: str, seconds: float) -> None:
    """Add ``seconds`` to phase ``name``."""
    _phases[name] = _phases.get(name, 0.0) + float(seconds)


@contextlib.contextmanager
def phase(name: str):
    """Charge the ``with`` block's wall time to ``name`` (minus phases measured inside it)."""
    frame = [name, time.perf_counter(), 0.0]
    _stack.append(frame)
    try:
        yield
    finally:
        _stack.pop()
        elapsed = time.perf_counter() - frame[1]
        add(name, elapsed - frame[2])
        if _stack:
            _stack[-1][2] += elapsed


def record(command: str) -> dict:
    """The timing record of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "command": command,
        "wall_s": round(_earlier[0] + process_start_seconds_ago(), 3),
        "cpu_s": round(_earlier[1] + usage.ru_utime + usage.ru_stime, 3),
        "phases": {k: round(v, 3) for k, v in _phases.items()},
        "warm_start": _warm[0],
    }


def line(command: str) -> str:
    """The record as the one line the command prints (see the module docstring)."""
    return PREFIX + json.dumps(record(command), sort_keys=True)


def parse(text: str) -> list[dict]:
    """Every timing record in a log's text."""
    return [json.loads(row[len(PREFIX):]) for row in text.splitlines() if row.startswith(PREFIX)]
