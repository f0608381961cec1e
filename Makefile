# dps: `make run` runs the default pipeline, `make test` runs the tests.
# Both install into a local virtual environment (.venv) first; torch 2.13.0 (a CPU wheel on
# these machines) is installed before the project so that no CUDA packages are pulled in.

PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV)/bin)
CORES  ?= all
export PATH := $(BIN):$(PATH)

.PHONY: install run report test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[workflow,dev]"
	touch $@

install: $(VENV)/.installed

# a run killed by kill -9 leaves a lock: removed when no other snakemake works here; the
# profile's rerun-incomplete (profiles/default, loaded by snakemake itself) redoes its
# unfinished jobs, so `make run` again resumes a stopped run
run: install
	$(BIN)/python workflow/scripts/unlock_stale.py $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html
	@echo "report: results/report.html; metrics: results/*/metrics.tsv"

test: install
	$(BIN)/python -m pytest -q --durations=10

lint: install
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

bench: install
	$(BIN)/python benchmarks/bench_decorrelation.py
	$(BIN)/python benchmarks/bench_background.py
	$(BIN)/python benchmarks/bench_deconvolution.py
	$(BIN)/python benchmarks/bench_sim.py
	$(BIN)/python benchmarks/bench_psf_id.py
	$(BIN)/python benchmarks/bench_calibration.py
	$(BIN)/python benchmarks/bench_networks.py --speed
	@echo "after 'make run': python benchmarks/bench_networks.py --run results"

clean:
	rm -rf results .snakemake
