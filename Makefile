# dps: `make run` runs the default pipeline, `make test` runs the tests.
# Both install into a local virtual environment (.venv) first, exactly the versions of
# requirements.lock (how it is made: `make lock`, below). torch comes first, alone, from
# TORCH_INDEX, so that the lock's other packages never pull a different torch build:
#   CPU (default): TORCH_INDEX empty = the configured package index (on these machines it
#     resolves torch==2.13.0 to the local CPU wheel); elsewhere use the CPU wheel index,
#     make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
#   GPU (CUDA 12.6): make install TORCH_INDEX=https://download.pytorch.org/whl/cu126

PYTHON      ?= python3
VENV        := .venv
BIN         := $(abspath $(VENV)/bin)
CORES       ?= all
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=
LOCK        := requirements.lock
EXTRAS      := workflow,dev,modelzoo,napari
export PATH := $(BIN):$(PATH)

.PHONY: install run report test lint bench figures clean lock python-check

# before anything installs: refuse a Python the project does not support
python-check:
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else \
	"dps needs Python >= 3.11; $(PYTHON) is %d.%d. Run: make install PYTHON=python3.11" % v[:2])'

$(VENV)/.installed: pyproject.toml $(LOCK) | python-check
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH)
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip check
	touch $@

# requirements.lock: every dependency of the project and its extras, pinned, torch and its
# CUDA/triton packages left out (TORCH above). Made by `pip freeze` of a fresh venv;
# regenerate after a change of pyproject.toml's ranges with `make lock`.
lock: | python-check
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH)
	.lock-venv/bin/python -m pip install --quiet -e ".[$(EXTRAS)]"
	.lock-venv/bin/python workflow/scripts/lock.py .lock-venv/bin/python $(LOCK) envs/dps.yaml
	rm -rf .lock-venv

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
	$(BIN)/snakemake paper --cores $(CORES) --configfile benchmarks/configs/real_data.yaml
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
