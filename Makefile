# Each target does its own set-up on a fresh machine (Python 3.11, CPU only).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch is pinned for CI and demo; users on GPUs install surf-video into their own env.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[test,train,web]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	mkdir -p out
	$(VENV)/bin/surf generate "a red circle moving right" --out out/demo.mp4 --seed 0

test: setup
	-bash .ci/setup-browser
	$(PY) -m pytest -q -m "not slow" tests

clean:
	rm -rf $(VENV) out
