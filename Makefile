# dps: `make run` runs the default pipeline, `make test` runs the tests.
# Both install into a local virtual environment (.venv) first; torch 2.13.0 (a CPU wheel on
# these machines) is installed before the project so that no CUDA packages are pulled in.

PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV)/bin)
CORES  ?= all
export PATH := $(BIN):$(PATH)

.PHONY: install run report test lint bench figures clean

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

# the reviewer's path: the real data through the DAG (benchmarks/configs/real_data.yaml, into
# results_real/), then results_real/paper/index.html: every claim of the papers beside ours
SHARED := ../shared/data
figures: install
	@for p in vdl-sim-microtubules/raw/GT vdl-sim-microtubules/reference dps-fig3a/Fig3a.tif decorrelation; do \
	  test -e $(SHARED)/$$p || { echo "make figures: $(SHARED)/$$p is absent. Put the shared data beside the project, at $(SHARED): vdl-sim-microtubules/ (WenjieLab/Deep-learning-based-real-time-SIM, test/images), dps-fig3a/Fig3a.tif (WenjieLab/DPS-framework-for-microscopy, test/Fig3a.tif), decorrelation/ (Ades91/ImDecorr and band-limited noise); its README.md gives the layout." >&2; exit 1; }; \
	done
	$(BIN)/python workflow/scripts/unlock_stale.py $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES) --configfile benchmarks/configs/real_data.yaml paper
	@echo "page: results_real/paper/index.html (and index.md)"

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
