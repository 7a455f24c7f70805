# Quick start targets. They need only python3: a .venv is created on first use.
PYTHON ?= python3
VENV   ?= .venv
JAX_VENV ?= .venv-jax
BIN    := $(VENV)/bin
# gpu extra when an NVIDIA driver answers, else the CPU build of TensorFlow.
EXTRA  := $(shell nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
CORES  ?= $(shell nproc 2>/dev/null || echo 2)

# `make reproduce` writes here, never into the committed results/.
REPRODUCTION ?= reproduction

.PHONY: install test test-jax-pipeline test-torch gpu-check gpu-wheels reproduce results long benchmark docs docs-serve lint clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e ".[$(EXTRA),pipeline,test]"
	touch $@

install: $(BIN)/.installed

# The whole suite on TensorFlow, then the backend-agnostic modules (the layer,
# the Lipschitz tools, the WGAN on every backend) again on JAX. PyTorch is tested locally only (README).
JAX_TESTS := tests/test_wgan_backends.py tests/test_landed_keras_files.py tests/test_spectral_normalization.py tests/test_lipschitz.py tests/test_lipschitz_bounds.py \
	tests/test_sn_layer_keras_suite.py tests/test_sn_layer_transparency.py tests/test_sn_layer_build_paths.py

# pytest-xdist workers. The TensorFlow pass takes three on two cores: its
# pipeline, SLURM, kill and multi-worker tests spend much of their time waiting
# on subprocesses, sleeps and SLURM's polls, and with two workers the cores were
# busy 73% of the pass. The JAX pass (in-process, CPU-bound) takes two. Modules
# that share an expensive fixture carry an xdist_group mark (one worker each).
PYTEST := $(BIN)/python -m pytest -q --dist loadgroup

test: install $(JAX_VENV)/.installed
	$(PYTEST) -n 3
	KERAS_BACKEND=jax $(PYTEST) -n 2 $(JAX_TESTS)

# The pipeline on JAX where TensorFlow is not installed: $(JAX_VENV), a venv of its own with the jax
# and pipeline extras only. tests/test_pipeline_on_jax.py (in `make test`'s first pass) runs the CI
# profile there and on TensorFlow here, and `keras-sngan agreement` between the two.
$(JAX_VENV)/.installed: pyproject.toml
	test -x $(JAX_VENV)/bin/python || $(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/python -m pip install --upgrade pip >/dev/null
	$(JAX_VENV)/bin/python -m pip install -e ".[jax,pipeline]"
	touch $@

test-jax-pipeline: install $(JAX_VENV)/.installed
	$(PYTEST) tests/test_pipeline_on_jax.py

# The WGAN and layer modules on PyTorch (local only, not in `make test`: with no torch installed,
# pip takes a CUDA build of several GB for `torch`; on these machines torch==2.13.0 is a CPU wheel on disk).
TORCH_TESTS := tests/test_wgan_backends.py tests/test_spectral_normalization.py tests/test_sn_layer_keras_suite.py
test-torch: install
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	KERAS_BACKEND=torch $(PYTEST) -n 2 $(TORCH_TESTS)

# The paper profile's image models on one accelerator with JAX/XLA (benchmarks/gpu_check.py; minutes on an
# H100). On a machine with JAX (CUDA) but no Keras: `make gpu-wheels` here, carry .gpu-wheels/, and there
# `pip install --no-index --find-links .gpu-wheels keras wrapt && make gpu-check PY=python` (keras_sngan from
# this checkout, through PYTHONPATH).
PY ?= $(BIN)/python
gpu-check:
	PYTHONPATH="$(CURDIR)" KERAS_BACKEND=jax $(PY) benchmarks/gpu_check.py --out benchmarks/results/gpu.json

# Keras' wheel, its dependencies and wrapt (keras_sngan), for a JAX-only machine (CPython 3.10-3.13, x86_64 Linux).
KERAS_VERSION = $(shell $(BIN)/python -c "import importlib.metadata as m; print(m.version('keras'))")
gpu-wheels: install
	rm -rf .gpu-wheels
	$(BIN)/python -m pip download --quiet --no-deps -d .gpu-wheels "keras==$(KERAS_VERSION)" namex rich \
		markdown-it-py mdurl pygments absl-py packaging typing-extensions
	for v in 3.10 3.11 3.12 3.13; do $(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: \
		--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --python-version $$v -d .gpu-wheels optree h5py wrapt; done
	du -sh .gpu-wheels

# The whole pipeline into $(REPRODUCTION)/ (every job runs: nothing there is up to date on a first
# run; a rerun after a kill resumes), then does it agree with the committed results/? The report:
# $(REPRODUCTION)/agreement.md (+ .json); exit status 1 and the list of differences if it does not.
reproduce: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --config results=$(REPRODUCTION)
	$(BIN)/keras-sngan agreement --committed results --reproduced $(REPRODUCTION) --out $(REPRODUCTION)/agreement.md

# Regenerate the committed results/ from scratch (every job reruns); commit what changed.
results: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --forceall

# The long profile (config/long.yaml) into results/long/: the toy comparison run to convergence plus the
# robustness runs, next to the default results/ it reads (about 1.5 h on 2 cores, 9,600 CPU seconds;
# a rerun after a kill resumes).
long: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --configfile config/long.yaml

benchmark: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/layers.py --out benchmarks/results/layers.json
	$(BIN)/python benchmarks/train_step.py > benchmarks/results/train_step.json
	# ours vs the independent oracle of tests/oracle_wgan.py: about 12 + 4 minutes on this 2-core machine
	$(BIN)/python benchmarks/oracle.py --width 128 --iterations 1000 --gan-toy --threads 1 > benchmarks/results/oracle.json
	$(BIN)/python benchmarks/oracle.py --width 128 --iterations 1000 --methods sn --variants ours oracle_sn_miyato \
		--threads 1 > benchmarks/results/oracle_sn_miyato.json

# The documentation site (mkdocs.yml, docs/) into site/; --strict: a broken link, a missing
# reference or a docstring that does not render fails the build (tests/test_docs.py does the same).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

clean:
	rm -rf .pytest_cache .snakemake site
