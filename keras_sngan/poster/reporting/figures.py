"""The figures, drawn from the experiments' CSV / NPZ files (matplotlib, Agg)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from keras_sngan.poster.plumbing import io  # noqa: E402
from keras_sngan.poster.plumbing.runs import (  # noqa: E402
    DATASET_ORDER, METHOD_COLOR, METHOD_LABEL, METHOD_ORDER, load, order,
)


def _smooth(values, window):
    return pd.Series(values).rolling(window, min_periods=1, center=True).mean().to_numpy()


def variance(inputs, out):
    """Variance check and per-layer activation / gradient norms."""
    d = inputs[0]
    check = pd.read_csv(os.path.join(d, "variance_check.csv"))
    prof = pd.read_csv(os.path.join(d, "propagation.csv"))
    prof = prof[prof["depth"] == prof["depth"].max()]
    acts = list(dict.fromkeys(prof["activation"]))
    fig, axes = plt.subplots(2, 1 + len(acts), figsize=(4.6 * (1 + len(acts)), 8), squeeze=False, layout="constrained")
    ax = axes[0, 0]
    for s2, g in check.groupby("s2"):
        ax.loglog(g["predicted"], g["empirical"], "o", label=f"s²={s2:g}")
    lim = [check["predicted"].min() / 2, check["predicted"].max() * 2]
    ax.plot(lim, lim, "k--", lw=1, label="n s²")
    ax.set(xlabel="n s² (predicted)", ylabel="empirical Var((Wx)ᵢ)", title="Var((Wx)ᵢ) = n s²")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    ax.plot(check["n"].astype(str) + "/" + check["s2"].astype(str), check["z"], "o")
    ax.axhline(0, color="k", lw=1)
    ax.set(ylabel="z = (emp - pred) / s.e.", xlabel="n / s²", title="deviation in standard errors")
    ax.tick_params(axis="x", rotation=90, labelsize=6)
    schemes = list(dict.fromkeys(prof["scheme"]))
    colors = plt.cm.tab10(np.arange(len(schemes)) % 10)
    for j, act in enumerate(acts, start=1):
        for scheme, color in zip(schemes, colors):
            g = prof[(prof["activation"] == act) & (prof["scheme"] == scheme)].sort_values("layer")
            style = "--" if scheme.startswith(("sn", "bsn")) else ":" if scheme == "glorot" else "-"
            axes[0, j].semilogy(g["layer"], g["activation_norm"], style, color=color, label=scheme)
            axes[1, j].semilogy(g["layer"], g["gradient_norm"], style, color=color, label=scheme)
        axes[0, j].set(title=f"{act}, depth {int(prof['depth'].max())}: activation norm", xlabel="layer", ylabel="||h_l|| / ||x||")
        axes[1, j].set(title=f"{act}: backpropagated gradient norm", xlabel="layer", ylabel="||df/dh|| (rel. to last layer)")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle("Initialization variance and signal propagation")
    io.save_figure(fig, out)


def lipschitz(inputs, out):
    """Certified upper vs certified lower Lipschitz bounds by depth and activation; conv per-layer norms."""
    d = inputs[0]
    mlp = pd.read_csv(os.path.join(d, "mlp_bounds.csv"))
    layers = pd.read_csv(os.path.join(d, "conv_layers.csv"))
    nets = pd.read_csv(os.path.join(d, "conv_networks.csv"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), layout="constrained")
    colors = dict(zip(["relu", "leaky_relu", "gelu", "swish"], ["tab:blue", "tab:green", "tab:red", "tab:purple"]))
    for ax, state in zip(axes[:2], ["trained", "worst_case"]):
        for act, g in mlp[mlp["state"] == state].groupby("activation", sort=False):
            ax.semilogy(g["depth"], g["upper_bound"], "-o", color=colors.get(act), label=f"{act} upper (certified)")
            ax.semilogy(g["depth"], g["lower_bound"], ":x", color=colors.get(act), label=f"{act} lower (certified)")
        ax.axhline(1.0, color="k", lw=1)
        ax.set(xlabel="depth (hidden layers)", ylabel="Lipschitz constant",
               title={"trained": "SN MLP fitted to y = 3 x₁", "worst_case": "SN width-1 chain at max-slope point"}[state])
    axes[0].legend(fontsize=6)
    ax = axes[2]
    for (method, g), color in zip(layers.groupby("method", sort=False), ["tab:orange", "tab:cyan", "tab:gray"]):
        bound = nets.set_index("method").loc[method, "upper_bound"]
        ax.plot(range(len(g)), g["certified_norm"], "-o", color=color,
                label=f"{method}: certified ({g['norm_method'].iloc[0]}), network bound {bound:.2f}")
        ax.plot(range(len(g)), g["operator_norm"], "x", color=color, label=f"{method}: power-iteration estimate")
    ax.axhline(1.0, color="k", lw=1)
    ax.set_xticks(range(len(g)), g["layer"], rotation=45, fontsize=7)
    ax.set(ylabel="operator norm", title="SN conv critic: per-layer operator norms")
    ax.legend(fontsize=6)
    fig.suptitle("Spectral normalization and 1-Lipschitz networks (both bounds certified)")
    io.save_figure(fig, out)


def _band(ax, frame, column, method, window, log=False):
    pivot = frame.pivot_table(index="iteration", columns="seed", values=column)
    values = np.vstack([_smooth(pivot[c].to_numpy(), window) for c in pivot.columns])
    x = pivot.index.to_numpy()
    mean = values.mean(0)
    ax.plot(x, mean, color=METHOD_COLOR[method], label=METHOD_LABEL[method], lw=1.2)
    ax.fill_between(x, values.min(0), values.max(0), color=METHOD_COLOR[method], alpha=0.2, lw=0)
    if log:
        ax.set_yscale("log")


TRAINING_PANELS = (
    "critic W estimate (symlog; the loss without GP's penalty, sign flipped)",
    "critic loss (symlog; GP's includes the penalty)",
    "‖∇ₓ f‖ probe (same points and mode for all)",
    "critic W estimate: train − held-out",
)


def training(inputs, out):
    """Critic Wasserstein estimate, critic loss, input-gradient norm and train/held-out gap vs iteration, per dataset.

    The first column is the critic's Wasserstein estimate ``W = E f(real) -
    E f(fake)`` (``wasserstein`` in ``history.csv``): the critic loss is
    ``-W`` for clipping and SN and ``-W + lambda * penalty`` for GP, so "GP
    drives the critic loss down fast" (claim 2a) is seen here without the
    penalty term, on the quantity rule 2a ranks. The dotted vertical line ends
    rule 2a's early block (the first ``EARLY_FRACTION`` of the run). The
    critic-loss column stays next to it, so the penalty's share of GP's loss
    remains visible. Lines: mean over seeds; bands: min..max over seeds.
    """
    from keras_sngan.poster.judging.claims import EARLY_FRACTION

    history = load(inputs, "history.csv")
    gap = load(inputs, "gap.csv")
    datasets = order(history["dataset"].unique(), DATASET_ORDER)
    methods = order(history["method"].unique(), METHOD_ORDER)
    window = max(1, int(history["iteration"].max()) // 40)
    fig, axes = plt.subplots(len(datasets), len(TRAINING_PANELS), figsize=(18, 3.0 * len(datasets)), squeeze=False,
                             layout="constrained")
    for i, dataset in enumerate(datasets):
        for method in methods:
            h = history[(history["dataset"] == dataset) & (history["method"] == method)]
            g = gap[(gap["dataset"] == dataset) & (gap["method"] == method)]
            _band(axes[i, 0], h, "wasserstein", method, window)
            _band(axes[i, 1], h, "critic_loss", method, window)
            _band(axes[i, 2], h, "probe_grad_norm", method, window, log=True)
            _band(axes[i, 3], g, "gap", method, 1)
        axes[i, 0].set_yscale("symlog", linthresh=1e-3)
        early_cut = max(1, int(np.ceil(EARLY_FRACTION * history.loc[history["dataset"] == dataset, "iteration"].max())))
        axes[i, 0].axvline(early_cut, color="k", ls=":", lw=0.8)
        if i == 0:
            axes[i, 0].annotate(f"first {EARLY_FRACTION:.0%} (rule 2a)", (early_cut, 0),
                                xycoords=("data", "axes fraction"), xytext=(3, 3), textcoords="offset points",
                                fontsize=7)
        axes[i, 1].set_yscale("symlog", linthresh=1e-2)
        axes[i, 0].set_ylabel(dataset)
        axes[i, 3].axhline(0, color="k", lw=0.8)
    for ax, title in zip(axes[0], TRAINING_PANELS):
        ax.set_title(title, fontsize=10)
    for ax in axes[-1]:
        ax.set_xlabel("generator iteration")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Training behaviour: SN vs GP vs clipping (mean, band = min..max over seeds)")
    io.save_figure(fig, out)


def layers(inputs, out):
    """Per-layer weight-gradient norms and spectral norms during training.

    Columns: methods. Rows: (gradient norm, spectral norm) for the toy MLP
    critics (geometric mean over toy datasets and seeds), then the same for
    each image dataset's CNN critic (its layers differ, so it is not pooled
    with the MLPs).
    """
    from keras_sngan.datasets import TOY_DATASETS

    table = load(inputs, "layers.csv")
    table["family"] = np.where(table["dataset"].isin(TOY_DATASETS), "toy MLP critics", table["dataset"] + " CNN critic")
    families = list(dict.fromkeys(sorted(table["family"], key=lambda f: (not f.startswith("toy"), f))))
    methods = order(table["method"].unique(), METHOD_ORDER)
    fig, axes = plt.subplots(2 * len(families), len(methods), figsize=(4.6 * len(methods), 3.4 * 2 * len(families)),
                             squeeze=False, layout="constrained")
    for i, family in enumerate(families):
        for j, method in enumerate(methods):
            t = table[(table["method"] == method) & (table["family"] == family)]
            for _, g in t.groupby("depth"):
                grad = g.groupby("iteration")["grad_norm"].apply(lambda v: np.exp(np.mean(np.log(np.maximum(v, 1e-30)))))
                axes[2 * i, j].semilogy(grad.index, _smooth(grad.to_numpy(), 10), label=g["layer"].iloc[0])
                sn = g.dropna(subset=["spectral_norm"]).groupby("iteration")["spectral_norm"].mean()
                axes[2 * i + 1, j].plot(sn.index, sn.to_numpy(), label=g["layer"].iloc[0])
            axes[2 * i, j].set(title=f"{family}, {METHOD_LABEL[method]}: ‖∂L/∂W‖", xlabel="iteration")
            axes[2 * i + 1, j].set(title=f"{family}, {METHOD_LABEL[method]}: spectral norm", xlabel="iteration")
        axes[2 * i, 0].legend(fontsize=7)
    fig.suptitle("Per-layer critic statistics (mean over datasets and seeds; spectral norm = SVD of the kernel reshaped to (-1, out))")
    io.save_figure(fig, out)


def _sample_files(inputs):
    rows = []
    for path in inputs:
        parts = os.path.normpath(path).split(os.sep)
        # .../<dataset>/<method>/seed<k>/eval/samples.npz
        rows.append({"dataset": parts[-5], "method": parts[-4], "seed": int(parts[-3][4:]), "path": path})
    frame = pd.DataFrame(rows)
    return frame[frame["seed"] == frame["seed"].min()]


def _method_grid(inputs, draw):
    """One panel per (dataset, method) of the lowest seed; ``draw(ax, path)`` fills it."""
    files = _sample_files(inputs)
    datasets = order(files["dataset"].unique(), DATASET_ORDER)
    methods = order(files["method"].unique(), METHOD_ORDER)
    fig, axes = plt.subplots(len(datasets), len(methods), figsize=(4 * len(methods), 4 * len(datasets)), squeeze=False)
    for i, dataset in enumerate(datasets):
        for j, method in enumerate(methods):
            ax = axes[i, j]
            row = files[(files["dataset"] == dataset) & (files["method"] == method)]
            if row.empty:
                ax.axis("off")
                continue
            draw(ax, row["path"].iloc[0])
            ax.set_title(f"{dataset} / {METHOD_LABEL[method]}", fontsize=9)
    return fig, axes


def samples(inputs, out):
    """Generated vs held-out toy samples with the critic's contours (lowest seed)."""

    def draw(ax, path):
        data = np.load(path)
        ax.contour(data["grid_x"], data["grid_y"], data["critic"], levels=15, cmap="Greys", linewidths=0.6)
        ax.scatter(*data["real"].T, s=2, c="tab:blue", alpha=0.4, label="held-out data")
        ax.scatter(*data["fake"].T, s=2, c="tab:orange", alpha=0.5, label="generated")
        ax.set_xticks([])
        ax.set_yticks([])

    fig, axes = _method_grid(inputs, draw)
    axes[0, 0].legend(fontsize=7, markerscale=4)
    fig.suptitle("Samples and critic contours")
    io.save_figure(fig, out)


def images(inputs, out):
    """8x8 grids of generated images (lowest seed) per dataset and method."""

    def draw(ax, path):
        ax.axis("off")
        imgs = np.load(path)["images"]
        n = int(np.sqrt(len(imgs)))
        imgs = (np.clip(imgs[: n * n], -1, 1) + 1) / 2
        imgs = np.pad(imgs, ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=0.5)  # grey separators
        h, w, c = imgs.shape[1:]
        grid = imgs.reshape(n, n, h, w, c).transpose(0, 2, 1, 3, 4).reshape(n * h, n * w, c)
        ax.imshow(grid.squeeze(-1) if c == 1 else grid, cmap="gray" if c == 1 else None, vmin=0, vmax=1)

    fig, _ = _method_grid(inputs, draw)
    fig.suptitle("Generated images")
    io.save_figure(fig, out)


def gradient_flow(inputs, out):
    """Per-layer weight-gradient norms of the deep critic at iteration 0, ~200 and the last one."""
    from keras_sngan.poster.reporting import gradient_flow as gf

    labels, paths = zip(*(item.split("=", 1) for item in inputs))
    table = gf.collect(paths, labels)
    last = int(table["iteration"].max())
    targets = sorted({0, min(200, last), last})
    prof = gf.profile(table, targets)
    configs = list(dict.fromkeys(labels))
    fig, axes = plt.subplots(1, len(targets) + 1, figsize=(4.5 * (len(targets) + 1), 4.4), layout="constrained")
    colors = plt.cm.tab10(np.arange(len(configs)))
    for ax, it in zip(axes, sorted(prof["iteration"].unique())):
        for config, color in zip(configs, colors):
            g = prof[(prof["iteration"] == it) & (prof["config"] == config)].sort_values("depth")
            ax.semilogy(g["depth"], g["grad_norm_geomean"], "-o", ms=3, color=color, label=config)
            ax.fill_between(g["depth"], g["grad_norm_min"], g["grad_norm_max"], color=color, alpha=0.15, lw=0)
        ax.set(title=f"iteration {it}", xlabel="layer (0 = input side)", ylabel="‖∂L/∂W_l‖")
    axes[0].legend(fontsize=7)
    ax = axes[-1]
    for config, color in zip(configs, colors):
        t = table[table["config"] == config]
        series = t.groupby("iteration")["grad_norm"].apply(lambda v: np.exp(np.mean(np.log(np.maximum(v, 1e-30)))))
        ax.semilogy(series.index, _smooth(series.to_numpy(), 10), color=color, label=config)
    ax.set(title="all layers (geometric mean) vs iteration", xlabel="generator iteration")
    fig.suptitle("Gradient flow through a deep ReLU critic (WGAN-GP Fig. 1b)")
    io.save_figure(fig, out)


def overfitting(inputs, out):
    """Claim 2b: the critic's standardized train - held-out gap vs iteration, one panel per cell."""
    from scipy import stats

    table = pd.concat([pd.read_csv(path) for path in inputs], ignore_index=True)
    cells = list(dict.fromkeys(zip(table["dataset"], table["train_size"])))
    labels = order(table["method"].unique(), METHOD_ORDER)
    extra_colors = iter(["tab:purple", "tab:orange", "tab:brown", "tab:gray"])
    colors = {m: METHOD_COLOR.get(m) or next(extra_colors, "k") for m in labels}
    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.4), squeeze=False, layout="constrained")
    for ax, (dataset, size) in zip(axes[0], cells):
        cell = table[(table["dataset"] == dataset) & (table["train_size"] == size)]
        for method in labels:
            t = cell[cell["method"] == method]
            if t.empty:
                continue
            g = t.groupby("iteration")["std_gap"]
            mean, sem, n = g.mean(), g.sem(), g.size()
            half = sem * stats.t.ppf(0.975, np.maximum(n - 1, 1))
            name = METHOD_LABEL.get(method, method.replace("gp", "gradient penalty λ="))
            ax.plot(mean.index, mean.to_numpy(), color=colors[method], label=f"{name} (n={int(n.max())})", lw=1.2)
            ax.fill_between(mean.index, (mean - half).to_numpy(), (mean + half).to_numpy(), color=colors[method], alpha=0.2, lw=0)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(title=f"{dataset}, {size} training samples", xlabel="generator iteration")
    axes[0, 0].set_ylabel("standardized gap d (train − held-out)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Does the critic overfit a small training set? (mean, band = 95% t-interval over seeds)")
    io.save_figure(fig, out)


def convergence(inputs, out):
    """W1 excess over the real-vs-real floor and modes covered vs iteration, per toy dataset (``quality.csv``).

    Lines: mean over seeds; bands: min..max over seeds. The shaded last
    ``LAST_FRACTION`` of the run is where the convergence criterion
    (:mod:`keras_sngan.poster.judging.convergence`) asks a cell to stay settled.
    """
    from keras_sngan.poster.judging.convergence import LAST_FRACTION

    quality = load(inputs, "quality.csv")
    datasets = order(quality["dataset"].unique(), DATASET_ORDER)
    methods = order(quality["method"].unique(), METHOD_ORDER)
    fig, axes = plt.subplots(2, len(datasets), figsize=(5.2 * len(datasets), 6.4), squeeze=False, layout="constrained")
    for j, dataset in enumerate(datasets):
        q = quality[quality["dataset"] == dataset]
        last = int(q["iteration"].max())
        for method in methods:
            qm = q[q["method"] == method]
            _band(axes[0, j], qm, "excess", method, 1)
            if "num_modes" in qm and qm["num_modes"].notna().any():
                _band(axes[1, j], qm, "modes_covered", method, 1)
        for ax in axes[:, j]:
            ax.axvspan((1 - LAST_FRACTION) * last, last, color="0.9", zorder=0)
        axes[0, j].axhline(0, color="k", lw=0.8)
        axes[0, j].set_title(dataset, fontsize=10)
        axes[1, j].set_xlabel("generator iteration")
        if "num_modes" in q and q["num_modes"].notna().any():
            axes[1, j].axhline(float(q["num_modes"].max()), color="k", lw=0.8, ls=":")
        else:
            axes[1, j].text(0.5, 0.5, "no modes (continuous)", ha="center", va="center", transform=axes[1, j].transAxes)
    axes[0, 0].set_ylabel("W1 excess over the real-vs-real floor")
    axes[1, 0].set_ylabel("modes covered")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Convergence of the long runs (mean, band = min..max over seeds; grey: the criterion's last "
                 f"{LAST_FRACTION:.0%})")
    io.save_figure(fig, out)


FIGURES = {
    "convergence": convergence,
    "overfitting": overfitting,
    "variance": variance,
    "lipschitz": lipschitz,
    "training": training,
    "layers": layers,
    "samples": samples,
    "images": images,
    "gradient-flow": gradient_flow,
}


def draw(name: str, inputs, out) -> None:
    """Draw figure ``name`` from ``inputs`` into the PNG file ``out``."""
    io.check_choice("figures.draw", "name", name, FIGURES)
    if not inputs:
        raise ValueError(f"figures.draw: figure {name!r} needs at least one input.")
    FIGURES[name](list(inputs), out)
