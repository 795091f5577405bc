# Two commands on a fresh Debian machine: `make demo` and `make test`.
# Both install what they need (Debian packages, .venv, pinned Python packages, the
# embedded Whisper model) and are quick and harmless to run again.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := python3 python3-venv espeak-ng sox tmux age poppler-utils \
	libreoffice-writer-nogui python3-uno fonts-liberation2 fonts-dejavu-core \
	postgresql
MODEL := models/whisper-base/model.bin.sha256
DEMO_HOME ?= demo

.PHONY: help setup system-deps venv model demo test lint gpu clean

help:
	@echo "make demo   set everything up and run the pipeline on sample dictations"
	@echo "make test   set everything up and run the whole test suite"
	@echo "make lint   ruff over the code"
	@echo "make gpu    on an NVIDIA GPU machine: the CUDA 12 libraries CTranslate2 opens"

setup: system-deps venv model

system-deps:
	@missing=""; for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

model: venv
	@$(PY) -m transcribe.asr.models

demo: setup
	$(PY) cli.py --home $(DEMO_HOME) demo

test: setup
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The optional `gpu` extra (the CUDA 12 cuBLAS wheel, a 600 MB download) for a GPU worker; then
# doctor's `gpu:` lines say what the worker would use. Not part of setup: CI has no GPU.
gpu: venv
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation -e '.[gpu]'
	-$(PY) cli.py doctor

clean:
	rm -rf $(VENV) models/whisper-base $(DEMO_HOME) .pytest_cache .ruff_cache
