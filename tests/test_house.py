"""The house: the library and the reproduction (``keras_sngan.poster``), what each may import, and what stays stable.

- The import rules of ``pyproject.toml`` (import-linter) hold, and no module
  of the package imports itself back through a chain (checked on grimp's
  graph, which sees imports inside functions too).
- The run specification: every training run of the four profiles keeps the
  checkpoint fingerprint that the landed main (482f3c1) gave it, both from
  the command lines it wrote and from the command lines the workflow writes
  now; a spec survives the command line unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_sngan.poster.cli import build_parser
from keras_sngan.poster.running.spec import RunSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANDED = os.path.join(ROOT, "tests", "data", "landed_main")
BIN = os.path.dirname(sys.executable)
PROFILES = ("config/config.yaml", "config/test.yaml", "config/long.yaml", "config/paper.yaml")


# ---------------------------------------------------------------- imports
def test_import_contracts_are_kept():
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=os.path.join(ROOT, "pyproject.toml")) == 0


def _cycles(graph) -> set:
    found = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                found.add(tuple(sorted(set(chain))))
    return found


def test_no_import_cycles_anywhere_in_the_package():
    import grimp

    assert _cycles(grimp.build_graph("keras_sngan")) == set()


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The check can fail: a package whose two modules import each other (one inside a function)."""
    import grimp

    package = tmp_path / "loop_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from loop_pkg import b\n")
    (package / "b.py").write_text("def f():\n    from loop_pkg import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles(grimp.build_graph("loop_pkg")) == {("loop_pkg.a", "loop_pkg.b")}


def test_the_library_imports_without_the_reproduction():
    """Every library module imports in a process where ``keras_sngan.poster`` cannot be imported at all."""
    code = (
        "import sys, importlib, pkgutil\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('keras_sngan.poster'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import keras_sngan\n"
        "for info in pkgutil.walk_packages(keras_sngan.__path__, 'keras_sngan.'):\n"
        "    if not info.name.startswith('keras_sngan.poster'):\n"
        "        importlib.import_module(info.name)\n"
        "from keras_sngan import SpectralNormalization, WGAN, WeightClipping, lipschitz, datasets, metrics\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


# ---------------------------------------------------------------- the run specification
def _landed():
    with open(os.path.join(LANDED, "fingerprints_landed_main.json")) as handle:
        return json.load(handle)


def _spec(argv) -> RunSpec:
    return RunSpec.from_args(build_parser().parse_args(["train", *argv]))


def test_fingerprints_of_the_landed_main_command_lines():
    """A checkpoint the landed main wrote still resumes: same settings, same fingerprint, every seed."""
    landed = _landed()
    assert len(landed) == 87
    for entry in landed:
        spec = _spec(entry["argv"])
        assert {str(seed): spec.fingerprint(seed) for seed in spec.seeds} == entry["fingerprints"], entry["argv"]
    first = landed[0]["params_of_first_seed"]
    assert {**_spec(landed[0]["argv"]).run_settings(), "seed": first["seed"]} == first


# Settings added after the landed main, which the profiles now set: a run with one of them is a new run
# (its own fingerprint); with them removed from its command line it is the landed main's run.
NEW_SETTINGS = {"--initializer": "gan_toy"}


def _without_new_settings(argv):
    """``argv`` without the options of :data:`NEW_SETTINGS` (which the profiles set only to those values)."""
    kept, i = [], 0
    while i < len(argv):
        if argv[i] in NEW_SETTINGS:
            assert argv[i + 1] == NEW_SETTINGS[argv[i]], argv
            i += 2
            continue
        kept.append(argv[i])
        i += 1
    return kept


def test_fingerprints_of_the_workflow_command_lines():
    """The workflow, from the config through RunSpec, writes runs whose fingerprints are the landed main's.

    Since the landed main the toy profiles set gan_toy.py's initializer
    (:data:`NEW_SETTINGS`): those runs must get new fingerprints (their
    checkpoints hold other weights), and with that option removed their
    command lines must give the landed main's. The `glorot` robustness
    variant (Keras' initializer, the landed main's setting, at width 512) has
    the landed main's `width_512` runs' fingerprints.
    """
    expected = {tuple(sorted(entry["fingerprints"].items())) for entry in _landed()}
    found, changed, glorot = set(), 0, []
    for profile in PROFILES:
        result = subprocess.run(
            [os.path.join(BIN, "snakemake"), "-n", "-p", "--forceall", "--configfile", profile,
             "--config", "results=/nonexistent/fingerprints"],
            capture_output=True, text=True, cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        for line in result.stdout.splitlines():
            if "keras-sngan train " in line:
                argv = shlex.split(line.split("keras-sngan train ", 1)[1].split(" 2>&1")[0])
                spec, old = _spec(argv), _without_new_settings(argv)
                prints = tuple(sorted((str(seed), spec.fingerprint(seed)) for seed in spec.seeds))
                if "/variants/glorot/" in line:
                    glorot.append(prints)
                if old != argv:
                    changed += 1
                    assert prints not in expected, argv
                    spec = _spec(old)
                    prints = tuple(sorted((str(seed), spec.fingerprint(seed)) for seed in spec.seeds))
                found.add(prints)
    assert found == expected
    assert changed > 0 and glorot and set(glorot) <= expected


def test_a_changed_setting_changes_the_fingerprint():
    base = _spec(_landed()[0]["argv"])
    for change in ({"gp_weight": 0.5}, {"width": 8}, {"learning_rate": 1e-3}, {"quality_samples": 0},
                   {"latent_dim": 3}):
        assert base.replace(**change).fingerprint(0) != base.fingerprint(0), change
    # how a run is run is not what it computes
    for change in ({"threads": 7}, {"verbose": 0}, {"out_dir": "elsewhere/{seed}"}, {"jit_compile": True}):
        assert base.replace(**change).fingerprint(0) == base.fingerprint(0), change


_SPECS = st.builds(
    RunSpec,
    dataset=st.sampled_from(["8gaussians", "swissroll", "digits", "cifar10"]),
    method=st.sampled_from(["clip", "gp", "sn"]),
    iterations=st.integers(1, 50).map(lambda k: 10 * k),
    batch_size=st.integers(1, 1024),
    width=st.integers(1, 1024),
    latent_dim=st.none() | st.integers(1, 128),
    optimizer=st.sampled_from(["adam", "rmsprop"]),
    learning_rate=st.floats(1e-9, 1.0),
    epsilon=st.none() | st.floats(1e-12, 1e-3),
    gp_weight=st.floats(0, 100),
    clip_value=st.floats(1e-6, 1.0),
    epochs=st.sampled_from([1, 2, 5, 10]),
    train_size=st.none() | st.integers(1, 10_000),
    quality_samples=st.integers(0, 2000),
    seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=4, unique=True).map(tuple),
    out_dir=st.sampled_from(["runs/seed{seed}", "a b/c {seed}"]),
    checkpoint_dir=st.none() | st.just("ckpt/{seed}"),
    jit_compile=st.sampled_from(["auto", True, False]),
    threads=st.none() | st.integers(1, 64),
)


@settings(max_examples=60, deadline=None)
@given(_SPECS)
def test_a_spec_survives_the_command_line(spec):
    """What the workflow writes (``to_cli``) is what the command reads back: the same spec, field by field."""
    assert _spec(shlex.split(spec.to_cli())) == spec


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"method": "wgan"}, ["`method`", "'wgan'", "['clip', 'gp', 'sn']"]),
        ({"iterations": 0}, ["`iterations`", ">= 1", "0"]),
        ({"epochs": 3}, ["`iterations`=10", "`epochs`=3", "multiple"]),
        ({"learning_rate": -1.0}, ["`learning_rate`", "> 0", "-1.0"]),
        ({"sn_method": "power"}, ["`sn_method`", "'power'", "operator"]),
        ({"seeds": (1, 1)}, ["`seeds`", "distinct"]),
        ({"seeds": (1, 2)}, ["`out_dir`", "{seed}", "'runs/x'"]),
        ({"batch_size": True}, ["`batch_size`", "True"]),
        ({"jit_compile": "yes"}, ["`jit_compile`", "'yes'"]),
    ],
)
def test_bad_settings_name_the_parameter_the_value_and_what_is_allowed(changes, words):
    base = dict(dataset="8gaussians", method="sn", seeds=(0,), iterations=10, batch_size=8, epochs=2, out_dir="runs/x")
    with pytest.raises(ValueError) as error:
        RunSpec(**{**base, **changes})
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_config_errors_name_where_in_the_config_the_setting_came_from():
    with pytest.raises(ValueError, match=r"`epochs` is `compare.epochs`"):
        RunSpec.from_settings(("compare", {"epochs": 7, "datasets": ["x"]}), ("compare.toy", {"iterations": 600}),
                              dataset="8gaussians", method="sn", seeds=(0,), batch_size=8, out_dir="r/{seed}")


def test_every_setting_is_a_command_line_option():
    options = {action.dest: action for action in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    for field in dataclasses.fields(RunSpec):
        assert field.name in options, field.name
