# behaviour-causal — `make help` lists the targets.
# Quickstart: `make reproduce` (whole study, smoke preset, CPU, minutes) and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory
# OpenMP threads (scikit-learn's histogram GBMs, LightGBM, torch) sleep instead of spinning while they
# wait: with a second busy process on a 2-core machine (a notebook beside `make test`, two notebooks of
# `make -j2 paper`), spinning made five 200-tree HistGradientBoosting fits take 582 s instead of 3.2 s.
# It changes scheduling only, never a number.
export OMP_WAIT_POLICY ?= PASSIVE
# glibc malloc serves every allocation from its heap and keeps what is freed (no mmap, no trim under 4 GiB).
# A full-softmax training step allocates and frees ~100 MB of logits and gradients; by default those come
# from fresh mmap pages, so a paper-preset Sports step page-faulted ~140,000 times and a third to a half of
# its time went to the kernel. PyTorch's CPU performance guide makes the same case for jemalloc / tcmalloc;
# this needs no extra library. Memory is reused, never shared, so no number changes. `make bench` measures it.
export GLIBC_TUNABLES ?= glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296

VENV    ?= .venv
PY      := $(VENV)/bin/python
ENV_OK  := $(VENV)/.bc-installed
P       := $(or $(PRESET),smoke)
RES     := results/$(P)
NB      = $(RES)/$(1)/$(1).ipynb
# What each notebook's results depend on: shared core + the code and config of its stage,
# so editing lib/causal re-runs notebooks 03-05 but not the training of notebook 02.
src     = $(shell find $(1) -type f \( -name '*.py' -o -name '*.yaml' \) 2>/dev/null)
CORE    := $(wildcard lib/*.py) conf/config.yaml conf/schema.yaml $(call src,conf/paths conf/preset)
DEPS_01 := $(CORE) $(call src,lib/data lib/simulate conf/data conf/simulate)
DEPS_02 := $(call src,lib/models lib/train lib/eval lib/embed conf/model conf/trainer)
DEPS_03 := $(call src,lib/causal conf/causal)
DEPS_05 := $(call src,lib/sweep conf/sweep)
RUN     := $(PY) -m lib.runner --preset $(P)
SWEEP   ?= ablations_smoke
JOBS    ?= 2
# pytest-xdist workers of `make test`: each takes whole test files, the smoke study first
# (tests/conftest.py), so the ~15-minute study runs beside the rest of the suite; 0 runs serially.
TEST_WORKERS ?= 2

help: ## list every target with one line each
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: PRESET=smoke|paper (default smoke; paper for 'make paper'), SWEEP=<conf/sweep name>, JOBS=N, TEST_WORKERS=N (0: serial)"

env: $(ENV_OK) ## create the environment (.venv) from environment.yml if missing: conda when present, else venv + pip

$(ENV_OK): environment.yml pyproject.toml
	@if command -v conda >/dev/null 2>&1 && [ -z "$${BC_NO_CONDA:-}" ]; then \
	  echo "[env] conda env at $(VENV) from environment.yml"; \
	  if [ -x "$(PY)" ]; then conda env update -p $(VENV) -f environment.yml; else conda env create -p $(VENV) -f environment.yml; fi; \
	else \
	  echo "[env] python venv at $(VENV), pip list read from environment.yml"; \
	  [ -x "$(PY)" ] || python3 -m venv $(VENV); \
	  $(PY) -m pip install -q --upgrade pip; \
	  $(PY) -m pip install -q $$(python3 lib/envspec.py environment.yml); \
	fi
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

test: $(ENV_OK) ## run the test suite (unit tests + notebooks 01-05 on the smoke preset)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

reproduce: $(ENV_OK) ## run the whole study on the smoke preset into paper/smoke/ and say where it is
	@$(MAKE) study PRESET=smoke
	@echo; echo "Tables, figures and metrics: paper/smoke/ (start with paper/smoke/RESULTS.md)"; \
	 echo "Executed notebooks and raw results: results/smoke/"

paper: $(ENV_OK) ## rebuild every table and figure of the study into paper/<preset>/ (PRESET=paper by default)
	@$(MAKE) study PRESET=$(or $(PRESET),paper)

study: $(ENV_OK) paper/$(P)/RESULTS.md

data: $(ENV_OK) $(call NB,01_prepare_data) ## notebook 01: raw data -> validated Parquet tables + causal benchmarks
train: $(ENV_OK) $(call NB,02_train_models) ## notebook 02: Lightning training, next-item tables, embeddings
effects: $(ENV_OK) $(call NB,03_estimate_effects) ## notebook 03: EconML estimates vs ground truth and the RCT
target: $(ENV_OK) $(call NB,04_target_interventions) ## notebook 04: uplift (Qini/AUUC), policy tree, interpretation
ablations: $(ENV_OK) $(call NB,05_run_ablations) ## notebook 05: ablation sweeps (representation x estimator x ...)

$(call NB,01_prepare_data): notebooks/01_prepare_data.py $(DEPS_01)
	$(RUN) 01_prepare_data
$(call NB,02_train_models): notebooks/02_train_models.py $(call NB,01_prepare_data) $(DEPS_02)
	$(RUN) 02_train_models
$(call NB,03_estimate_effects): notebooks/03_estimate_effects.py $(call NB,02_train_models) $(DEPS_03)
	$(RUN) 03_estimate_effects
$(call NB,04_target_interventions): notebooks/04_target_interventions.py $(call NB,01_prepare_data) $(DEPS_03)
	$(RUN) 04_target_interventions
$(call NB,05_run_ablations): notebooks/05_run_ablations.py $(call NB,03_estimate_effects) $(DEPS_03) $(DEPS_05)
	$(RUN) 05_run_ablations

NOTEBOOKS := 01_prepare_data 02_train_models 03_estimate_effects 04_target_interventions 05_run_ablations
paper/$(P)/RESULTS.md: $(foreach n,$(NOTEBOOKS),$(call NB,$(n))) $(call src,lib/report conf/report)
	$(PY) -m lib.report --preset $(P) --strict

figures: $(ENV_OK) ## re-render tables, figures and metrics.json from saved results (no training)
	$(PY) -m lib.report --preset $(P)

sweep: $(ENV_OK) ## run a sweep: make sweep SWEEP=<name in conf/sweep> [JOBS=N] (resumable)
	$(PY) -m lib.sweep $(SWEEP) --preset $(P) --jobs $(JOBS)

bench: $(ENV_OK) ## benchmarks: training, causal fit time, causal fitting at scale, 1M-user export (BENCH_ARGS="--only causal_scale" etc.)
	$(PY) -m lib.bench $(BENCH_ARGS)

lab: $(ENV_OK) ## open JupyterLab on notebooks/ (jupytext opens the .py files as notebooks)
	$(VENV)/bin/jupyter lab notebooks/

clean: ## remove results/ and generated data (keeps the environment and committed paper/paper)
	rm -rf results data/processed paper/smoke

.PHONY: help env test reproduce paper study data train effects target ablations figures sweep bench lab clean
