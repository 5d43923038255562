# HS-MAD: one-command setup, demo and tests.  `make demo` | `make test`
# Idempotent: `make setup` re-runs only when settings.ini, setup.py, this file or the fix-up change.
SHELL := /bin/bash
PYTHON ?= python3.11
# GPU users: `make setup TORCH_SPEC='torch==2.5.1'` (or pre-install their CUDA torch in .venv).
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hsmad-setup
SF2 := /usr/share/sounds/sf2/FluidR3_GM.sf2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# tests run two notebooks at a time on 2 cores: one BLAS/torch thread each avoids oversubscription
test test-slow: export OMP_NUM_THREADS := 1
test test-slow: export MKL_NUM_THREADS := 1
# OpenMP threads that spin while waiting starve the other worker on a loaded 2-core machine
test test-slow: export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup sysdeps test test-slow export readme check-export demo paper lab clean-venv

setup: $(STAMP)

sysdeps:  ## FluidSynth + the General MIDI soundfont, without the Qt front-end; Chromium + ChromeDriver (the listening-page test)
	@if [ -f $(SF2) ] && ldconfig -p | grep -q libfluidsynth && [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; \
	then echo "sysdeps: FluidSynth, $(SF2), Chromium and ChromeDriver present"; \
	else $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends fluidsynth fluid-soundfont-gm chromium chromium-driver; fi

$(STAMP): settings.ini setup.py Makefile tools/fix_torchaudio.py
	$(MAKE) sysdeps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
	@# torch first, so the package's `torch>=2.3` range is already met and no CUDA build is pulled
	$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/pip install -q '$(TORCH_SPEC)' 2>&1 | grep -v 'is ignored' || true
	$(BIN)/pip install -q -e '.[eval,dev]' 2>&1 | grep -v 'is ignored' || true
	@# basic-pitch's metadata pulls TensorFlow; its ONNX model needs only what eval_requirements installs
	$(BIN)/pip install -q --no-deps basic-pitch==0.4.0 2>&1 | grep -v 'is ignored' || true
	$(BIN)/python tools/fix_torchaudio.py
	$(BIN)/python -c 'import hsmad, torch, dac, basic_pitch, madmom, fluidsynth, nbdev, pyloudnorm, uvicorn, selenium; print("setup: environment ok, torch", torch.__version__)'
	@touch $@

check-export: setup  ## fails when nbs/ and hsmad/ are out of sync
	@tmp=$$(mktemp -d) && cp -r nbs settings.ini $$tmp/ && mkdir -p $$tmp/hsmad && \
	(cd $$tmp && $(CURDIR)/$(BIN)/nbdev_export) && \
	if diff -r -x __pycache__ $$tmp/hsmad hsmad; then echo "check-export: hsmad/ matches nbs/"; rm -rf $$tmp; \
	else echo "check-export: hsmad/ differs from nbdev_export of nbs/ -- run 'make export' and commit"; rm -rf $$tmp; exit 1; fi
	$(BIN)/python tools/readme.py --check

export: setup  ## nbs/ -> hsmad/ and README.md
	$(BIN)/nbdev_export
	$(BIN)/python tools/readme.py

test: setup check-export  ## every test: the notebooks' own (nbdev_test) and pytest tests/
	$(BIN)/nbdev_test --n_workers 2 --timing
	$(BIN)/python -m pytest -q tests

test-slow: setup
	$(BIN)/nbdev_test --n_workers 1 --flags slow --timing
	$(BIN)/python -m pytest -q tests --runslow

demo: setup  ## the main job on the built-in mini data: build, encode, train HS-MAD + Baseline-Global, generate, evaluate, figures, report
	PY=$(BIN)/python DEMO_STEPS="$(DEMO_STEPS)" tools/demo.sh

SCALE ?= tiny
# resumable: run it again after a stop and it continues (tools/paper.sh says how); FORCE=1 reruns every stage
paper: setup  ## experiment notebooks -> executed/, results/, figures/ (SCALE=tiny|paper; STEPS, JOBS, KEEP_LAST, FORCE; paper needs DATA_ROOT, GPUS; optional HSMAD_RUN GLOBAL_RUN FLAT_RUN ABLATION_RUNS)
	PY=$(BIN)/python DATASET="$(DATASET)" DATA_ROOT="$(DATA_ROOT)" GPUS="$(GPUS)" STEPS="$(STEPS)" JOBS="$(JOBS)" CKPT_EVERY="$(CKPT_EVERY)" KEEP_LAST="$(KEEP_LAST)" FORCE="$(FORCE)" HSMAD_RUN="$(HSMAD_RUN)" GLOBAL_RUN="$(GLOBAL_RUN)" FLAT_RUN="$(FLAT_RUN)" ABLATION_RUNS="$(ABLATION_RUNS)" tools/paper.sh $(SCALE)

# JupyterLab on the notebooks; the server's own python is the kernel (.venv, with this checkout installed).
# Nothing is fetched at run time: no announcements feed, no update check, no extension manager.
lab: setup  ## open nbs/ in JupyterLab on the project's kernel
	$(BIN)/jupyter lab --notebook-dir=nbs --LabApp.news_url=None \
		--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate --LabApp.extension_manager=readonly \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

clean-venv:
	rm -rf $(VENV)
