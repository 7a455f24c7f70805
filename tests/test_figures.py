"""The training-behaviour figure on small synthetic run directories (the pipeline test checks that every
figure of a real run is written; this checks what the training figure draws)."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from keras_sngan.poster.reporting import figures
from keras_sngan.poster.plumbing import io


def _run(root, dataset, method, seed, iterations=80):
    run = root / dataset / method / f"seed{seed}"
    os.makedirs(run)
    it = np.arange(iterations + 1)
    scale = {"clip": 1e-2, "gp": 2.0, "sn": 0.3}[method]
    w = scale * (1 - np.exp(-it / (5 if method == "gp" else 30))) * (1 + 0.1 * seed)
    penalty = 0.5 * np.exp(-it / 10) if method == "gp" else np.zeros_like(w)
    pd.DataFrame(dict(iteration=it, critic_loss=-w + penalty, wasserstein=w, generator_loss=-w,
                      gradient_penalty=penalty, grad_norm=w + 1e-3, probe_grad_norm=w + 1e-3)).to_csv(
        run / "history.csv", index=False)
    pd.DataFrame(dict(iteration=it[::10], w_train=w[::10], w_heldout=w[::10], gap=0.0)).to_csv(
        run / "gap.csv", index=False)
    (run / "run.json").write_text(json.dumps(dict(dataset=dataset, method=method, seed=seed, iterations=iterations)))
    return str(run)


@pytest.fixture
def runs(tmp_path):
    return [_run(tmp_path / "runs", d, m, s) for d in ("8gaussians", "swissroll") for m in ("clip", "gp", "sn")
            for s in (0, 1)]


def test_training_figure_shows_the_wasserstein_estimate_without_the_penalty(runs, tmp_path, monkeypatch):
    drawn = {}
    save = io.save_figure

    def keep(fig, path, **kwargs):
        drawn["axes"] = [[ax.get_title() for ax in fig.axes], fig.axes]
        save(fig, path, **kwargs)

    monkeypatch.setattr(io, "save_figure", keep)
    out = tmp_path / "training_behaviour.png"
    figures.draw("training", runs, str(out))
    assert out.read_bytes()[:4] == b"\x89PNG"

    titles, axes = drawn["axes"]
    assert len(axes) == 2 * len(figures.TRAINING_PANELS)  # 2 datasets x 4 panels
    assert titles[0].startswith("critic W estimate") and "penalty" in titles[0]
    assert titles[1].startswith("critic loss")
    # Row 0, W panel: GP's line is the mean over seeds of the smoothed `wasserstein` column (no penalty in it).
    lines = {line.get_label(): line for line in axes[0].get_lines()}
    gp = lines["gradient penalty"].get_ydata()
    seeds = [pd.read_csv(os.path.join(r, "history.csv"))["wasserstein"].to_numpy() for r in runs
             if "8gaussians/gp" in r]
    window = max(1, 80 // 40)
    expected = np.mean([figures._smooth(s, window) for s in seeds], axis=0)
    np.testing.assert_allclose(gp, expected)
    # ... and the loss panel's GP line is not (it carries the penalty).
    loss = {line.get_label(): line for line in axes[1].get_lines()}["gradient penalty"].get_ydata()
    assert not np.allclose(loss, -expected)
    # Rule 2a's early block is marked: first EARLY_FRACTION of 80 iterations -> iteration 8.
    cuts = [line.get_xdata()[0] for line in axes[0].get_lines() if line.get_linestyle() == ":"]
    assert cuts == [8]
