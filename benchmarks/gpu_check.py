"""The paper profile's image models on one accelerator with JAX and XLA: one prepared check.

Trains Miyato et al.'s standard CNN critic and generator at the paper
profile's settings (``config/paper.yaml``: 32x32x3, batch 64, n_critic 5,
critic 64 / generator 512 base channels, latent 128) with ``WGAN.fit`` on
Keras' JAX backend (one XLA-compiled step), for ``--iterations`` generator
iterations per method (``sn``, ``gp``, ``none``) on random images in
``[-1, 1]`` (the check times the step; the data do not matter). Writes JSON
with the device, the median milliseconds per generator iteration per method
(warm-up dropped), SN's time over no constraint, the first step's time (XLA
compilation included) and the peak device memory of each method, and the
100k-iteration profile's extrapolated training time.

Targets on one H100 (reported, not enforced): SN's 100k iterations in at
most 30 minutes (about 18 ms per iteration), SN at most 1.05x none.

``--tiny`` runs the same code with small models, batch 2 and 3 iterations:
``tests/test_gpu_check.py`` runs it on CPU in ``make test`` so the script
cannot rot.

Usage::

    make gpu-check                                   # -> benchmarks/results/gpu.json
    python benchmarks/gpu_check.py --tiny --out /tmp/gpu-tiny.json

The GPU machines lent to this project have JAX with CUDA but no Keras: bring
the wheels along (``make gpu-wheels`` downloads Keras and its pure-Python
dependencies and wrapt into ``.gpu-wheels/``, 25 MB), and on the machine run
``pip install --no-index --find-links .gpu-wheels keras wrapt`` then
``make gpu-check PY=python`` (keras_sngan from the checkout via ``PYTHONPATH``).
Tried here in a new venv holding only jax, numpy and scipy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

METHODS = ("sn", "gp", "none")
PAPER = {"image_size": 32, "channels": 3, "batch": 64, "n_critic": 5, "critic_channels": 64,
         "generator_channels": 512, "latent_dim": 128, "iterations": 100_000}
TINY = dict(PAPER, batch=2, critic_channels=4, generator_channels=16, latent_dim=8)
TARGETS = {"sn_100k_minutes": 30.0, "sn_over_none": 1.05}


def _peak_bytes(device):
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if not stats:
        return None
    return int(stats.get("peak_bytes_in_use", stats.get("bytes_in_use", 0)))


def time_method(method, spec, iterations, warmup):
    """``WGAN.fit`` for ``iterations`` iterations of one method; per-step seconds and first-step time."""
    import keras
    import numpy as np

    from keras_sngan import models
    from keras_sngan.wgan import WGAN

    keras.utils.set_random_seed(0)
    critic = models.standard_critic(image_size=spec["image_size"], channels=spec["channels"],
                                    base_channels=spec["critic_channels"],
                                    lipschitz=method)
    generator = models.standard_generator(latent_dim=spec["latent_dim"], image_size=spec["image_size"],
                                          channels=spec["channels"], base_channels=spec["generator_channels"])
    gan = WGAN(critic, generator, latent_dim=spec["latent_dim"], lipschitz=method, n_critic=spec["n_critic"],
               gp_weight=10.0, seed=0)
    # Miyato et al.'s Adam for the standard CNN; the same for every method, so only the constraint differs.
    gan.compile(critic_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999),
                generator_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999), jit_compile=True)
    element = spec["n_critic"] * spec["batch"]
    shape = (element, spec["image_size"], spec["image_size"], spec["channels"])
    pool = np.random.default_rng(0).uniform(-1, 1, (4,) + shape).astype("float32")

    class RandomImages(keras.utils.PyDataset):
        def __len__(self):
            return iterations

        def __getitem__(self, index):
            return (pool[index % len(pool)],)

    stamps = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            [float(v) for v in (logs or {}).values()]  # wait for the step (asynchronous dispatch)
            stamps.append(time.perf_counter())

    start = time.perf_counter()
    gan.fit(RandomImages(), epochs=1, verbose=0, callbacks=[Clock()])
    times = [stamps[0] - start] + [b - a for a, b in zip(stamps, stamps[1:])]
    kept = times[warmup:]
    return {"ms_per_iteration": 1000 * statistics.median(kept), "steps_timed": len(kept),
            "first_step_s": times[0], "jit_compile": bool(gan.jit_compile)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="small models, batch 2, 3 iterations (CPU, CI)")
    parser.add_argument("--iterations", type=int, default=None, help="timed run length per method (default 60)")
    parser.add_argument("--warmup", type=int, default=None, help="first steps dropped (default 10)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", default="benchmarks/results/gpu.json")
    args = parser.parse_args(argv)
    iterations = args.iterations or (3 if args.tiny else 60)
    warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 10)
    if not 0 <= warmup < iterations:
        raise SystemExit(f"gpu_check: --warmup must be in [0, --iterations), received {warmup} with "
                         f"--iterations {iterations}.")
    spec = TINY if args.tiny else PAPER

    import jax
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit(f"gpu_check runs on Keras' JAX backend, but KERAS_BACKEND is {keras.backend.backend()!r}.")
    device = jax.devices()[0]
    results = {}
    for method in args.methods:
        results[method] = time_method(method, spec, iterations, warmup)
        results[method]["peak_device_bytes"] = _peak_bytes(device)  # running peak: includes earlier methods
    report = {
        "what": "WGAN.fit on Keras' JAX backend (XLA), ms per generator iteration (n_critic critic updates + 1 "
                "generator update), median after warm-up",
        "tiny": args.tiny,
        "device": {"platform": device.platform, "kind": getattr(device, "device_kind", str(device)),
                   "count": jax.device_count()},
        "versions": {"jax": jax.__version__, "keras": keras.__version__, "python": platform.python_version()},
        "settings": dict(spec, iterations_timed=iterations, warmup=warmup),
        "methods": results,
    }
    if "sn" in results:
        minutes = results["sn"]["ms_per_iteration"] * spec["iterations"] / 60_000
        report["sn_100k_minutes_extrapolated"] = minutes
        report["targets"] = {"sn_100k_minutes <= 30": None if args.tiny else minutes <= TARGETS["sn_100k_minutes"]}
        if "none" in results:
            ratio = results["sn"]["ms_per_iteration"] / results["none"]["ms_per_iteration"]
            report["sn_over_none"] = ratio
            report["targets"]["sn_over_none <= 1.05"] = None if args.tiny else ratio <= TARGETS["sn_over_none"]
    text = json.dumps(report, indent=2)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    bad = [name for name, row in results.items() if not math.isfinite(row["ms_per_iteration"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
