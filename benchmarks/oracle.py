"""Ours vs an independent minimal WGAN (tests/oracle_wgan.py), the long comparison. Prints JSON.

The long version of ``tests/test_oracle.py``: for each method (gp, clip, sn)
and seed, ours (`keras_sngan.poster.running.training.train`) and the oracle
(written from WGAN-GP's ``gan_toy.py`` with plain TensorFlow ops, no
keras_sngan code) train on 8gaussians at the same settings (batch 256, 5
critic steps, gan_toy.py's optimizers, penalty weight 0.1, clip 0.01), with
the oracle set to ours' choices where ours departs from gan_toy.py (Glorot
initialization; Keras' RMSprop accumulator; clipped initial weights, see
``tests/test_oracle.py``). Every run is measured with ``keras_sngan.metrics``
(modes covered, high-quality fraction, W1 excess over the real-vs-real floor,
the critic's logged Wasserstein estimate at fixed iterations, the trained
critic's held-out estimate), and ``oracle_compare.agreement`` decides per
metric whether the two agree within seed spread.

``--variants ... oracle_sn_miyato`` adds for SN the oracle with Miyato et
al.'s reparametrization written in plain TensorFlow instead of Keras' layer
(which writes ``W / sigma`` into the kernel and has no gradient through
sigma). ``--gan-toy`` adds, per method, the oracle at gan_toy.py's own settings
(He initialization, TF1 RMSProp), reported next to ours with the same rule:
where it disagrees, the setting (not the trainer) makes the difference.

The reference scale is ``--width 512 --iterations 2000 --seeds 0 1 2``
(about an hour here for both trainers); ``benchmarks/results/oracle.json``
records the settings it was run with.

Usage:
    python benchmarks/oracle.py --width 128 --iterations 1000 --gan-toy > benchmarks/results/oracle.json
    python benchmarks/oracle.py --quick     # width 32, 100 iterations, 2 seeds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import oracle_compare  # noqa: E402

AT_OUR_SETTINGS = {  # the same as tests/test_oracle.py's ORACLE_AT_OUR_SETTINGS
    "gp": {"init": "glorot"},
    "sn": {"init": "glorot"},
    "clip": {"init": "glorot", "optimizer": {"initial_mean_square": 0.0, "epsilon": 1e-7}, "clip_initial": True},
}


VARIANTS = ("ours", "oracle", "oracle_gan_toy", "oracle_sn_miyato")


def run_variant(name, method, seed, common):
    if name == "ours":
        return oracle_compare.run_ours("8gaussians", method, seed, **common)
    if name == "oracle":
        return oracle_compare.run_oracle("8gaussians", method, seed, **common, **AT_OUR_SETTINGS[method])
    if name == "oracle_gan_toy":
        return oracle_compare.run_oracle("8gaussians", method, seed, **common, init="gan_toy")
    # the oracle at our settings with Miyato's SN written in plain TensorFlow instead of Keras' layer
    return oracle_compare.run_oracle("8gaussians", method, seed, **common, **AT_OUR_SETTINGS[method],
                                     sn_layer="miyato")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["gp", "clip", "sn"])
    parser.add_argument("--gan-toy", action="store_true", help="also the oracle at gan_toy.py's own settings")
    parser.add_argument("--variants", nargs="+", default=None, choices=VARIANTS,
                        help="runs to make (default: ours, oracle, and oracle_gan_toy with --gan-toy)")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow / BLAS threads")
    parser.add_argument("--quick", action="store_true", help="width 32, 100 iterations, seeds 0 1")
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.iterations, args.seeds = 32, 100, [0, 1]
    if args.threads is not None:
        from keras_sngan import runtime

        runtime.configure_tensorflow(args.threads)
    import keras
    import tensorflow as tf

    t = args.iterations
    checkpoints = (t // 10, t // 2, t)
    window = max(t // 20, 1)
    common = dict(iterations=t, width=args.width, checkpoints=checkpoints, window=window)
    start = time.perf_counter()
    results = {}
    variants = args.variants or ["ours", "oracle"] + (["oracle_gan_toy"] if args.gan_toy else [])
    if "ours" not in variants or len(variants) < 2:
        parser.error("--variants must hold 'ours' and at least one oracle")
    for method in args.methods:
        names = [v for v in variants if v != "oracle_sn_miyato" or method == "sn"]
        runs = {name: [] for name in names}
        seconds = {name: 0.0 for name in names}
        for seed in args.seeds:
            for name in names:
                begin = time.perf_counter()
                row = run_variant(name, method, seed, common)
                seconds[name] += time.perf_counter() - begin
                runs[name].append({"seed": seed, **row})
                print(f"{method} {name} seed {seed}: {row}", file=sys.stderr, flush=True)
        entry = {"runs": runs}
        strip = lambda rows: [{k: v for k, v in r.items() if k != "seed"} for r in rows]  # noqa: E731
        for name in names[1:]:  # ours vs each oracle ("agreement": vs the oracle at our settings)
            key = {"oracle": "agreement", "oracle_gan_toy": "agreement_with_gan_toy_settings"}.get(name, f"agreement_with_{name.removeprefix('oracle_')}")
            entry[key] = oracle_compare.agreement(strip(runs["ours"]), strip(runs[name]))
            print(oracle_compare.format_table(f"{method} ours vs {name}", entry[key]), file=sys.stderr, flush=True)
        if "agreement" in entry:
            entry["all_agree"] = all(row["agree"] for row in entry["agreement"].values())
        entry["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
        results[method] = entry
    out = {
        "benchmark": "oracle_comparison",
        "what": "keras_sngan's trainer vs an independent minimal WGAN (tests/oracle_wgan.py) on 8gaussians",
        "settings": {
            "dataset": "8gaussians", "width": args.width, "depth": 3, "batch_size": 256, "n_critic": 5,
            "iterations": t, "seeds": args.seeds, "checkpoints": list(checkpoints), "window": window,
            "gp_weight": 0.1, "clip_value": 0.01,
            "reference_scale": {"width": 512, "iterations": 2000, "seeds": 3},
            "rule": "|mean_ours - mean_oracle| <= 3 * pooled seed sd + floors (oracle_compare.FLOORS)",
            "oracle_at_our_settings": AT_OUR_SETTINGS,
            "variants": variants,
        },
        "results": results,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "machine": {"cpus": os.cpu_count(), "processor": platform.machine(), "threads": args.threads},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
