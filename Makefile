# Quick start: `make demo` and `make test`. Both create .venv (Python 3.10)
# and install the locked dependency set when it is missing or out of date.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export TF_USE_LEGACY_KERAS := 1
export PYTHONUNBUFFERED := 1

# python3.10 on PATH, else a pyenv-installed 3.10 (pyenv shims refuse a
# version that is not selected, so look in the versions directory too).
PYTHON310 ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { echo $$p; break; }; done)

DEMO_OUT ?= demo-output
DEMO_PORT ?= 8500
DEMO_USER ?= 9403

.PHONY: venv demo test lint lock clean image push

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock setup.py
	@test -n "$(PYTHON310)" || { echo "Python 3.10 not found (TFX 1.16 needs 3.9-3.10): install it or set PYTHON310=/path/to/python3.10"; exit 1; }
	test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<25" wheel
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: venv
	bash scripts/demo.sh "$(DEMO_OUT)" "$(DEMO_PORT)" "$(DEMO_USER)"

# Layer contracts (pyproject.toml) and lint first: a broken layer fails in seconds.
# Two test processes, a file each at a time: most tests keep one core busy.
test: venv
	bash scripts/install_chromium.sh
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 --dist loadfile tests

lint: venv
	$(VENV)/bin/ruff check .

# Re-resolve requirements.in into requirements.lock (needs network to PyPI).
lock:
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile requirements.in --python-version 3.10 --no-header -o requirements.lock

# The step image (kubeflow/Dockerfile), also retrieval-serve's in deploy/. Its
# name and tag are written once, in pipeline/image.py. Needs Docker.
REGISTRY ?=
IMAGE = $(shell python3 pipeline/image.py $(REGISTRY))

image:
	docker build -f kubeflow/Dockerfile -t $(IMAGE) .

push: image
	docker push $(IMAGE)

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
