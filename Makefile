# Two commands: `make demo` and `make test`. Both set up .venv on a fresh clone.
# `make demo` installs only what the default demo needs (the `viz` extra: pictures and image
# files); `make test` installs every extra so the whole suite runs (MuJoCo, serve, MCP, Ray, ...).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check
DEMO_EXTRAS ?= viz
TEST_EXTRAS ?= all

.PHONY: demo test setup clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) "torch==2.13.0"
	touch $@

$(VENV)/.installed-demo: pyproject.toml $(VENV)/.torch
	$(PIP) -e ".[$(DEMO_EXTRAS)]"
	touch $@

$(VENV)/.installed-all: pyproject.toml $(VENV)/.torch
	$(PIP) -e ".[$(TEST_EXTRAS)]"
	touch $@ $(VENV)/.installed-demo

setup: $(VENV)/.installed-all

demo: $(VENV)/.installed-demo
	$(VENV)/bin/sage demo

test: $(VENV)/.installed-all
	$(PY) -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info
