"""The convergence criterion of the long profile, on quality records built to answer each way."""

import math

import numpy as np
import pandas as pd
import pytest

from keras_sngan.poster.judging import convergence

ITERATIONS = np.arange(0, 2001, 100)


def _runs(dataset, method, excess_of, seeds=(0, 1, 2), modes_of=None, floor=0.08, num_modes=8):
    """Quality rows: excess_of(iteration, seed) over a fixed floor; modes_of(iteration, seed) modes covered."""
    rows = []
    for seed in seeds:
        for it in ITERATIONS:
            excess = float(excess_of(it, seed))
            row = {"dataset": dataset, "method": method, "seed": seed, "iteration": int(it), "w1": floor + excess,
                   "floor": floor, "excess": excess, "n": 1000}
            if modes_of is not None:
                row.update(modes_covered=modes_of(it, seed), num_modes=num_modes)
            rows.append(row)
    return pd.DataFrame(rows)


def _decay(scale, rate):
    return lambda it, seed: scale * math.exp(-it / rate)


def test_a_run_that_plateaus_early_converged_and_the_settling_record_is_the_analytic_one():
    # excess = 1.3 exp(-it / 200): within 0.1 * w1_final (~0.008) of its final value from it = 200 ln(1.3 / 0.008) ~ 1018
    table = convergence.cell_convergence(_runs("8gaussians", "gp", _decay(1.3, 200), modes_of=lambda it, s: 8 if it >= 600 else 3))
    row = table.iloc[0]
    assert row["converged"]
    final_w1 = 0.08 + 1.3 * math.exp(-2000 / 200)
    expected = min(it for it in ITERATIONS if all(abs(1.3 * math.exp(-t / 200) - 1.3 * math.exp(-10)) <= 0.1 * final_w1
                                                   for t in ITERATIONS if t >= it))
    assert row["settled_from"] == expected == 1100
    assert row["min_modes_covered"] == 8 and row["num_modes"] == 8


def test_a_run_still_improving_at_the_cap_did_not_converge():
    table = convergence.cell_convergence(_runs("8gaussians", "gp", _decay(1.3, 1500), modes_of=lambda it, s: 8))
    row = table.iloc[0]
    assert not row["converged"]
    assert row["settled_from"] > 0.8 * 2000


def test_a_missing_mode_at_the_end_blocks_convergence_even_on_a_flat_excess():
    modes = lambda it, seed: 7 if (seed == 2 and it == 2000) else 8  # noqa: E731
    row = convergence.cell_convergence(_runs("8gaussians", "sn", lambda it, s: 0.02, modes_of=modes)).iloc[0]
    assert not row["converged"] and math.isnan(row["settled_from"])
    assert row["min_modes_covered"] == 7


def test_a_late_mode_loss_and_recovery_moves_the_settling_point():
    modes = lambda it, seed: 7 if it == 1700 else 8  # noqa: E731
    row = convergence.cell_convergence(_runs("8gaussians", "sn", lambda it, s: 0.02, modes_of=modes)).iloc[0]
    assert row["settled_from"] == 1800 and not row["converged"]  # settled over only the last 10% of the run


def test_continuous_sets_are_judged_on_the_excess_alone_and_the_best_method_is_the_lowest_final_excess():
    quality = pd.concat([
        _runs("swissroll", "gp", _decay(1.0, 200)),
        _runs("swissroll", "clip", lambda it, s: 0.5 - 0.0002 * it),
    ])
    table = convergence.cell_convergence(quality).set_index("method")
    assert table.loc["gp", "converged"] and table.loc["gp", "best"]
    assert not table.loc["clip", "converged"] and not table.loc["clip", "best"]
    assert math.isnan(table.loc["gp", "num_modes"])
    summary = convergence.reached(table.reset_index())
    assert summary == {"swissroll": {"best": "gp", "converged": True, "iterations": 2000,
                                     "settled_from": int(table.loc["gp", "settled_from"])}}


def test_seed_noise_within_the_tolerance_does_not_unsettle_a_cell():
    rng = np.random.default_rng(0)
    noise = {(it, s): rng.uniform(-0.003, 0.003) for it in ITERATIONS for s in range(3)}
    row = convergence.cell_convergence(_runs("swissroll", "sn", lambda it, s: 0.03 + noise[it, s])).iloc[0]
    assert row["converged"] and row["settled_from"] == 0


def test_a_table_without_the_quality_columns_is_refused_by_name():
    with pytest.raises(ValueError, match="excess"):
        convergence.cell_convergence(pd.DataFrame({"dataset": ["a"], "method": ["gp"], "seed": [0], "iteration": [0],
                                                   "w1": [1.0], "floor": [0.1]}))
