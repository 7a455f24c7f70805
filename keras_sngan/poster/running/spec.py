"""One WGAN training run of the reproduction, as one validated object: :class:`RunSpec`.

The same object travels the whole way: the workflow builds it from the
validated config (``workflow/rules/common.smk``) and writes it as
``keras-sngan train`` options (:meth:`RunSpec.to_cli`); the command line reads
those options back (:meth:`RunSpec.add_arguments`, :meth:`RunSpec.from_args`);
:func:`keras_sngan.poster.running.training.train` trains it; and its
:meth:`~RunSpec.fingerprint` guards the run's checkpoints. Adding a run
setting means adding a field here (with its help, and ``group`` if it belongs
to the model's or the optimizer's options) and, for the pipeline, the key of
the same name in ``config/schema.yaml``: the workflow passes every config key
that names a field, and the command line offers every field as an option.

Every check runs when the object is made, before any backend starts, and a
bad value raises ``ValueError`` naming the parameter, the value received and
what is allowed.

This module needs only the standard library: the Snakefile loads it by path,
without importing the package.

Example::

    from keras_sngan.poster.running import spec, training

    run = spec.RunSpec(dataset="8gaussians", method="sn", seeds=(0, 1), iterations=500,
                       batch_size=256, width=256, out_dir="runs/8g-sn/seed{seed}")
    infos = training.train(run)   # one run.json dictionary per seed
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
import os
import shlex

METHODS = ("clip", "gp", "sn")
OPTIMIZERS = ("adam", "rmsprop")
SN_METHODS = ("reshape", "bidirectional", "operator")
DISTRIBUTE_MODES = ("auto", "none", "mirrored", "multi-worker")
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}  # command-line word -> value

REQUIRED = dataclasses.MISSING


def _setting(default=REQUIRED, *, help, kind, group=None, flag=None, choices=None, minimum=None,
             optional=False, recorded="always", metavar=None):
    """A field of :class:`RunSpec` with what the command line and the checks need to know about it.

    Args:
        kind: ``int``, ``float``, ``str``, ``"path"`` (a string or path-like, kept
            as a string), ``"seeds"`` (distinct integers >= 0) or ``"jit"``
            (``"auto"``, ``True`` or ``False``).
        group: ``"model"`` or ``"optimizer"``: recorded in that dictionary of
            ``run.json`` and of the fingerprint (see :meth:`RunSpec.run_settings`).
        flag: the command-line option (default ``--`` and the name with dashes).
        minimum: integers: the smallest allowed; floats: ``0`` means > 0.
        optional: ``None`` allowed (the library's default).
        recorded: ``"always"``, ``"if-set"`` (in the fingerprint only when not
            the default: a setting added later leaves the older runs'
            checkpoints valid) or ``"never"`` (how to run, not what: threads,
            directories, verbosity).
    """
    metadata = dict(help=help, kind=kind, group=group, flag=flag, choices=choices, minimum=minimum,
                    optional=optional, recorded=recorded, metavar=metavar)
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSpec:
    """Every setting of one WGAN training run (clip / GP / SN) and of how to run its seeds.

    The seeds of one spec differ only in their seed: each is the run its
    seed would make alone. ``out_dir`` and ``checkpoint_dir`` hold ``{seed}``
    when there are several seeds.
    """

    # --- what is trained (recorded in run.json and in the checkpoint fingerprint)
    dataset: str = _setting(help="a toy set (8gaussians, 25gaussians, swissroll), digits or a TFDS image set",
                            kind=str)
    method: str = _setting(help="clip, gp or sn", kind=str, choices=METHODS)
    iterations: int = _setting(help="generator iterations", kind=int, minimum=1)
    batch_size: int = _setting(help="critic batch size", kind=int, minimum=1)
    n_critic: int = _setting(5, help="critic steps per generator step", kind=int, minimum=1)
    width: int = _setting(512, help="toy MLP width", kind=int, minimum=1, group="model")
    depth: int = _setting(3, help="toy critic hidden layers", kind=int, minimum=1, group="model")
    activation: str = _setting("relu", help="toy critic activation", kind=str, group="model")
    initializer: str = _setting("glorot", help="toy MLP kernel initializer: glorot (Keras' default) or gan_toy "
                                "(gan_toy.py's: He-uniform hidden layers, Glorot output)", kind=str,
                                choices=("glorot", "gan_toy"), group="model", recorded="if-set")
    sn_method: str = _setting("reshape", help="how SN takes a kernel's norm", kind=str, choices=SN_METHODS,
                              group="model")
    critic_channels: int = _setting(16, help="image critic base channels", kind=int, minimum=1, group="model")
    generator_channels: int = _setting(64, help="image generator base channels", kind=int, minimum=1, group="model")
    latent_dim: int | None = _setting(None, help="latent size (default: 2 for toy sets, 32 for images)", kind=int,
                                      minimum=1, optional=True, group="model", recorded="if-set")
    optimizer: str = _setting("adam", help="adam or rmsprop (both networks)", kind=str, choices=OPTIMIZERS,
                              group="optimizer")
    learning_rate: float = _setting(1e-4, help="learning rate", kind=float, minimum=0, group="optimizer")
    beta_1: float = _setting(0.5, help="Adam's beta_1", kind=float, group="optimizer")
    beta_2: float = _setting(0.9, help="Adam's beta_2", kind=float, group="optimizer")
    epsilon: float | None = _setting(
        None, kind=float, minimum=0, optional=True, group="optimizer",
        help="optimizer epsilon (default: Keras' own, 1e-7; gan_toy.py's TF1 optimizers: 1e-10 RMSprop, 1e-8 Adam)")
    gp_weight: float = _setting(10.0, help="penalty weight of gp", kind=float)
    clip_value: float = _setting(0.01, help="clipping bound of clip", kind=float, minimum=0)
    epochs: int = _setting(10, help="progress lines / checkpoints (a kill costs at most one epoch)", kind=int,
                           minimum=1)
    stats_every: int = _setting(10, help="iterations between spectral-norm and gap records", kind=int, minimum=1)
    gap_samples: int = _setting(1000, help="samples per Wasserstein estimate of the critic's gap", kind=int,
                                minimum=1)
    train_size: int | None = _setting(None, help="training-set size (default: the dataset's)", kind=int, minimum=1,
                                      optional=True)
    quality_samples: int = _setting(
        0, kind=int, minimum=0, recorded="if-set",
        help="toy sets: W1 / modes of this many generated points after every epoch (quality.csv); 0: off")

    # --- how its seeds are run (not part of the numbers)
    seeds: tuple = _setting(
        kind="seeds", flag="--seed", recorded="never", metavar="SEED",
        help="one seed, or several: trained one after the other in this process (one backend start-up and one "
             "traced step for all), each as its lone run would be")
    out_dir: str = _setting(help="output directory; with several seeds it must contain {seed} (one per seed)",
                            kind="path", recorded="never")
    checkpoint_dir: str | None = _setting(
        None, kind="path", optional=True, recorded="never",
        help="crash-safe checkpoints (default OUT_DIR/checkpoints; {seed} as in --out-dir); rerun the same "
             "command after a kill to resume exactly where the last epoch ended")
    jit_compile: object = _setting(
        "auto", kind="jit", recorded="never",
        help="XLA: auto = where measured faster on a CPU for this model and run length (run.json records it)")
    threads: int | None = _setting(None, help="compute threads (backend intra-op and BLAS / OpenMP pools)", kind=int,
                                   minimum=1, optional=True, recorded="never")
    verbose: int = _setting(2, help="Keras fit verbosity (2: one line per epoch)", kind=int, minimum=0,
                            recorded="never")
    distribute: str = _setting("auto", kind=str, choices=DISTRIBUTE_MODES, recorded="never",
                               help="auto: multi-worker if TF_CONFIG names a cluster, mirrored if --replicas > 1, "
                                    "else none")
    replicas: int = _setting(1, help="replicas of a one-process mirrored run (logical CPUs on a CPU machine)",
                             kind=int, minimum=1, recorded="never")

    def __post_init__(self):
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _checked(field, getattr(self, field.name)))
        if self.iterations % self.epochs:
            raise ValueError(
                f"train: `iterations`={self.iterations} must be a multiple of `epochs`={self.epochs} "
                "(each epoch is one checkpoint and one progress line)."
            )
        for name in ("out_dir", "checkpoint_dir"):
            template = getattr(self, name)
            if template is not None and "{seed}" not in template and len(self.seeds) > 1:
                raise ValueError(
                    f"train: `{name}` must contain {{seed}} when several seeds are given {list(self.seeds)}, "
                    f"received {template!r}."
                )

    # ------------------------------------------------------------------ per seed
    def out_dirs(self) -> list[str]:
        """One output directory per seed."""
        return [self.out_dir.replace("{seed}", str(seed)) for seed in self.seeds]

    def checkpoint_dirs(self) -> list:
        """One checkpoint directory per seed (``None``: ``<out_dir>/checkpoints``)."""
        if self.checkpoint_dir is None:
            return [None] * len(self.seeds)
        return [self.checkpoint_dir.replace("{seed}", str(seed)) for seed in self.seeds]

    def replace(self, **changes) -> RunSpec:
        """A copy with some settings changed (checked again)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ what is recorded
    def run_settings(self) -> dict:
        """The settings that decide a run's numbers, in ``run.json``'s layout.

        ``model`` and ``optimizer`` are dictionaries (the optimizer's name
        under ``name``); ``model`` also holds ``clip_value``. A setting
        recorded ``if-set`` appears only when it differs from its default.
        """
        settings, groups = {}, {"model": {}, "optimizer": {}}
        for field in dataclasses.fields(self):
            meta, value = field.metadata, getattr(self, field.name)
            if meta["recorded"] == "never" or (meta["recorded"] == "if-set" and value == field.default):
                continue
            if meta["group"] is None:
                settings[field.name] = value
            else:
                groups[meta["group"]]["name" if field.name == "optimizer" else field.name] = value
        groups["model"]["clip_value"] = self.clip_value  # the critic's constraint is built from it
        return {**settings, **groups}

    def fingerprint(self, seed: int, backend: str = "tensorflow") -> str:
        """SHA-256 of the settings that decide the numbers of ``seed``'s run: its checkpoints' guard.

        ``backend``: the Keras backend that trains it. Backends draw different
        random numbers (and JAX's data order is NumPy's), so a checkpoint
        resumes only on the backend that wrote it; ``"tensorflow"`` adds
        nothing to the hash, so TensorFlow checkpoints written before the
        backend was a setting keep their fingerprint. Pinned by
        ``tests/test_house.py`` against the fingerprints that commit 482f3c1
        wrote for every run of the four profiles.
        """
        extra = {} if backend == "tensorflow" else {"backend": str(backend)}
        return fingerprint({**self.run_settings(), "seed": int(seed), **extra})

    # ------------------------------------------------------------------ the command line
    @classmethod
    def add_arguments(cls, parser) -> None:
        """One ``argparse`` option per field (``keras-sngan train``)."""
        for field in dataclasses.fields(cls):
            meta = field.metadata
            options = dict(help=meta["help"], dest=field.name)
            if field.default is REQUIRED:
                options["required"] = True
            else:
                options["default"] = field.default
            if meta["kind"] == "seeds":
                options.update(type=int, nargs="+")
            elif meta["kind"] == "jit":
                options.update(choices=list(JIT_COMPILE), default="auto")
            elif meta["kind"] in (int, float):
                options["type"] = meta["kind"]
            if meta["metavar"]:
                options["metavar"] = meta["metavar"]
            parser.add_argument(_flag(field), **options)

    @classmethod
    def from_args(cls, args) -> RunSpec:
        """The spec of parsed ``keras-sngan train`` options."""
        values = {field.name: getattr(args, field.name) for field in dataclasses.fields(cls)}
        values["jit_compile"] = JIT_COMPILE.get(values["jit_compile"], values["jit_compile"])
        return _made(cls, values, {field.name: _flag(field) for field in dataclasses.fields(cls)}, "option")

    @classmethod
    def from_settings(cls, *layers, **fixed) -> RunSpec:
        """A spec from config sections: every key that names a field, later layers winning, then ``fixed``.

        Each layer is a mapping, or ``(name, mapping)`` with the config path
        of the mapping (``"compare.toy"``): an error then also names where in
        the config each setting it mentions came from. Keys that name no
        field (``datasets``, ``clip_values``, ...) are ignored: a config
        section holds other settings too.
        """
        names = {field.name for field in dataclasses.fields(cls)}
        values, origins = {}, {}
        for layer in layers:
            where, mapping = layer if isinstance(layer, tuple) else (None, layer)
            for key, value in mapping.items():
                if key in names:
                    values[key] = value
                    origins[key] = f"{where}.{key}" if where else None
        values.update(fixed)
        for key in fixed:
            origins.pop(key, None)
        if isinstance(values.get("seeds"), list):
            values["seeds"] = tuple(values["seeds"])
        return _made(cls, values, {key: where for key, where in origins.items() if where}, "in the config")

    def to_cli(self) -> str:
        """``keras-sngan train`` options that make this spec (shell-quoted; defaults left out)."""
        words = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value == field.default and field.default is not REQUIRED:
                continue
            if field.metadata["kind"] == "seeds":
                words += [_flag(field), *map(str, value)]
            elif field.metadata["kind"] == "jit":
                words += [_flag(field), {v: k for k, v in JIT_COMPILE.items()}[value]]
            elif value is not None:
                words += [_flag(field), repr(value) if isinstance(value, float) else str(value)]
        return shlex.join(words)


def fingerprint(params: dict) -> str:
    """SHA-256 of a run's parameters (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def _made(cls, values: dict, sources: dict, what: str):
    """``cls(**values)``; a ``ValueError`` also says where each setting it names came from (``sources``)."""
    try:
        return cls(**values)
    except ValueError as error:
        named = [key for key in sources if f"`{key}`" in str(error)]
        if not named:
            raise
        raise ValueError(f"{error} ({what}: {', '.join(f'`{key}` is `{sources[key]}`' for key in named)})") from None


def _flag(field) -> str:
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def _checked(field, value):
    """``value`` of ``field`` as its kind (int, float, ...) or ``ValueError`` naming it, the value and what is allowed."""
    meta, name = field.metadata, field.name
    if value is None and meta["optional"]:
        return None
    kind, minimum = meta["kind"], meta["minimum"]
    if kind == "seeds":
        seeds = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if (not seeds or len(set(seeds)) != len(seeds)
                or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0 for s in seeds)):
            raise ValueError(f"train: `seeds` must be distinct integers >= 0, at least one, received {value!r}.")
        return tuple(int(s) for s in seeds)
    if kind == "jit":
        if value not in ("auto", True, False) or isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"train: `jit_compile` must be 'auto', True or False, received {value!r}.")
        return value
    if kind == "path":
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            raise ValueError(f"train: `{name}` must be a directory path, received {value!r}.")
        return os.fspath(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum):
            raise ValueError(f"train: `{name}` must be an integer >= {minimum}, received {value!r}.")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float("-inf") < value < float("inf"):
            raise ValueError(f"train: `{name}` must be a finite number, received {value!r}.")
        if minimum is not None and not value > minimum:
            raise ValueError(f"train: `{name}` must be a finite number > {minimum}, received {value!r}.")
        return float(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"train: `{name}` must be a non-empty string, received {value!r}.")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ValueError(f"train: `{name}` must be one of {list(meta['choices'])}, received {value!r}.")
    return value
