"""`WGAN.fit`'s iteration time on each Keras backend, next to a hand-written `jax.jit` loop.

One *iteration* is ``n_critic = 5`` critic updates and one generator update.
Two workloads:

- ``toy_gp``: gan_toy.py's WGAN-GP (512-wide 3-hidden-layer ReLU MLPs, batch
  256, penalty weight 0.1, Adam(1e-4, 0.5, 0.9));
- ``cnn_sn``: Miyato's standard CNN critic with SN and its generator, 32x32x3,
  batch 64, Adam(2e-4, 0.5, 0.999) (timing only: random images).

Each measurement runs in its own process (a Keras backend is chosen per
process): ``WGAN.fit`` on TensorFlow (graph, and XLA with
``jit_compile=True``), on JAX (XLA, always), on PyTorch when it is installed,
and, for ``toy_gp``, a minimal hand-written ``jax.jit`` iteration with no
Keras (`handwritten_toy_gp`). Every process trains one long epoch and stamps
the end of each step (reading the step's logs, so JAX's asynchronous dispatch
is waited for); warm-up steps (tracing, compilation) are dropped and the
median step time is kept. The processes run in rounds (A B C ... A B C ...),
and each figure is the minimum over rounds of the medians, so a noisy moment
on the machine does not decide a ratio. Prints JSON.

Usage::

    python benchmarks/wgan_backends.py --out benchmarks/results/wgan_backends.json
    python benchmarks/wgan_backends.py --quick      # a short run
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time

N_CRITIC = 5
WORKLOADS = {
    "toy_gp": {"batch": 256, "width": 512, "gp_weight": 0.1},
    "cnn_sn": {"batch": 64, "image_size": 32, "latent_dim": 128},
}


def _clock_fit(workload, steps, jit_compile):
    """`WGAN.fit` on this process's backend; returns per-step seconds after warm-up."""
    import keras
    import numpy as np

    from keras_sngan import models
    from keras_sngan.wgan import WGAN

    spec = WORKLOADS[workload]
    keras.utils.set_random_seed(0)
    if workload == "toy_gp":
        critic = models.toy_critic(width=spec["width"], lipschitz="gp")
        generator = models.toy_generator(width=spec["width"])
        latent, shape, method = 2, (2,), "gp"
        opt = lambda: keras.optimizers.Adam(1e-4, beta_1=0.5, beta_2=0.9)  # noqa: E731
    else:
        critic = models.standard_critic(image_size=spec["image_size"], channels=3, lipschitz="sn")
        generator = models.standard_generator(latent_dim=spec["latent_dim"], image_size=spec["image_size"], channels=3)
        latent, shape, method = spec["latent_dim"], (spec["image_size"], spec["image_size"], 3), "sn"
        opt = lambda: keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999)  # noqa: E731
    gan = WGAN(critic, generator, latent_dim=latent, lipschitz=method, n_critic=N_CRITIC,
               gp_weight=spec.get("gp_weight", 10.0), seed=0)
    compile_kwargs = {} if jit_compile is None else {"jit_compile": jit_compile}
    gan.compile(critic_optimizer=opt(), generator_optimizer=opt(), **compile_kwargs)
    element = N_CRITIC * spec["batch"]
    data = np.random.default_rng(0).standard_normal((element * steps,) + shape).astype("float32")

    stamps = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            [float(v) for v in (logs or {}).values()]  # wait for the step (JAX dispatches asynchronously)
            stamps.append(time.perf_counter())

    gan.fit(data, batch_size=element, epochs=1, shuffle=False, verbose=0, callbacks=[Clock()])
    return [b - a for a, b in zip(stamps, stamps[1:])], gan.jit_compile


def handwritten_toy_gp(steps):
    """gan_toy.py's WGAN-GP iteration in plain JAX under one ``jax.jit`` (no Keras): per-step seconds."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    spec = WORKLOADS["toy_gp"]
    width, batch, lam = spec["width"], spec["batch"], spec["gp_weight"]
    rng = np.random.default_rng(0)

    def mlp_params(sizes):
        return [(jnp.asarray(rng.uniform(-1, 1, (a, b)) * np.sqrt(6 / (a + b)), jnp.float32), jnp.zeros(b))
                for a, b in zip(sizes[:-1], sizes[1:])]

    def mlp(params, x):
        for i, (w, b) in enumerate(params):
            x = x @ w + b
            if i < len(params) - 1:
                x = jax.nn.relu(x)
        return x

    def adam_init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return (jnp.zeros((), jnp.int32), zeros, zeros)

    def adam(params, grads, state, lr=1e-4, b1=0.5, b2=0.9, eps=1e-7):
        t, m, v = state
        t = t + 1
        m = jax.tree.map(lambda m_, g: b1 * m_ + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v_, g: b2 * v_ + (1 - b2) * g * g, v, grads)
        lr_t = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        return jax.tree.map(lambda p, m_, v_: p - lr_t * m_ / (jnp.sqrt(v_) + eps), params, m, v), (t, m, v)

    def critic_cost(critic, real, fake, alpha):
        scores = mlp(critic, jnp.concatenate([real, fake])).reshape(-1)
        wasserstein = jnp.mean(scores[:batch]) - jnp.mean(scores[batch:])
        x_hat = alpha * real + (1 - alpha) * fake
        g = jax.grad(lambda x: jnp.sum(mlp(critic, x)))(x_hat)
        norms = jnp.sqrt(jnp.sum(g * g, axis=1) + 1e-12)
        return -wasserstein + lam * jnp.mean((norms - 1) ** 2), (wasserstein, jnp.mean(norms))

    @jax.jit
    def iteration(state, element, key):
        critic, generator, c_opt, g_opt = state
        reals = element.reshape(batch, N_CRITIC, 2)
        costs = []
        for k in range(N_CRITIC):
            key, k1, k2 = jax.random.split(key, 3)
            fake = mlp(generator, jax.random.normal(k1, (batch, 2)))
            alpha = jax.random.uniform(k2, (batch, 1))
            (cost, aux), grads = jax.value_and_grad(critic_cost, has_aux=True)(critic, reals[:, k], fake, alpha)
            critic, c_opt = adam(critic, grads, c_opt)
            costs.append(cost)
        key, k1 = jax.random.split(key)
        noise = jax.random.normal(k1, (batch, 2))
        g_cost, grads = jax.value_and_grad(lambda g: -jnp.mean(mlp(critic, mlp(g, noise))))(generator)
        generator, g_opt = adam(generator, grads, g_opt)
        return (critic, generator, c_opt, g_opt), key, {"critic_loss": jnp.mean(jnp.stack(costs)),
                                                        "generator_loss": g_cost, "wasserstein": aux[0]}

    critic, generator = mlp_params([2, width, width, width, 1]), mlp_params([2, width, width, width, 2])
    state = (critic, generator, adam_init(critic), adam_init(generator))
    data = rng.standard_normal((steps, N_CRITIC * batch, 2)).astype("float32")
    key = jax.random.PRNGKey(0)
    stamps = [time.perf_counter()]
    for i in range(steps):
        state, key, logs = iteration(state, jnp.asarray(data[i]), key)
        [float(v) for v in logs.values()]
        stamps.append(time.perf_counter())
    return [b - a for a, b in zip(stamps, stamps[1:])], True


def worker(args):
    """Run one measurement in this process and print its JSON."""
    started = time.perf_counter()
    if args.variant == "handwritten_jax":
        times, jit = handwritten_toy_gp(args.steps)
    else:
        jit = {"xla": True, "graph": False, "default": None}[args.variant]
        times, jit = _clock_fit(args.workload, args.steps, jit)
    kept = times[args.warmup:]
    import keras

    print(json.dumps({"median_s": statistics.median(kept), "steps_timed": len(kept), "first_step_s": times[0],
                      "jit_compile": jit, "backend": keras.backend.backend() if args.variant != "handwritten_jax"
                      else "jax (no Keras)", "wall_s": time.perf_counter() - started}))


def cases(workloads):
    """``(name, backend, workload, variant)`` of every measurement to run."""
    out = []
    torch = importlib.util.find_spec("torch") is not None
    for workload in workloads:
        out += [(f"{workload}/tensorflow_graph", "tensorflow", workload, "graph"),
                (f"{workload}/tensorflow_xla", "tensorflow", workload, "xla"),
                (f"{workload}/jax", "jax", workload, "default")]
        if torch:
            out.append((f"{workload}/torch", "torch", workload, "default"))
        if workload == "toy_gp":
            out.append((f"{workload}/handwritten_jax", "jax", workload, "handwritten_jax"))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and one round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--worker", nargs=2, metavar=("WORKLOAD", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.workload, args.variant = args.worker
        return worker(args)

    rounds = 1 if args.quick else args.rounds
    results = {}
    for _ in range(rounds):
        for name, backend, workload, variant in cases(args.workloads):
            steps = {"toy_gp": 12 if args.quick else 40, "cnn_sn": 5 if args.quick else 12}[workload]
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            run = subprocess.run([sys.executable, __file__, "--worker", workload, variant, "--steps", str(steps),
                                  "--warmup", "2" if workload == "cnn_sn" else "3"],
                                 env=env, capture_output=True, text=True, check=False)
            if run.returncode:
                raise SystemExit(f"{name} failed:\n{run.stderr[-3000:]}")
            row = json.loads(run.stdout.strip().splitlines()[-1])
            best = results.get(name)
            row["medians_s"] = (best["medians_s"] if best else []) + [row["median_s"]]
            row["median_s"] = min(row["medians_s"])
            results[name] = row
    ratios = {}
    if "toy_gp/jax" in results and "toy_gp/handwritten_jax" in results:
        ratios["toy_gp: WGAN.fit on JAX / hand-written jax.jit (target <= 1.10)"] = (
            results["toy_gp/jax"]["median_s"] / results["toy_gp/handwritten_jax"]["median_s"])
    for workload in args.workloads:
        tf_best = min(results[f"{workload}/tensorflow_{v}"]["median_s"] for v in ("graph", "xla"))
        ratios[f"{workload}: JAX / TensorFlow's faster mode (toy target <= 1.0)"] = (
            results[f"{workload}/jax"]["median_s"] / tf_best)
        if f"{workload}/torch" in results:
            ratios[f"{workload}: PyTorch / TensorFlow's faster mode"] = results[f"{workload}/torch"]["median_s"] / tf_best
    report = {
        "what": "median seconds per WGAN iteration (5 critic updates + 1 generator update), min over rounds",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "rounds": rounds,
        "results": results,
        "ratios": ratios,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
