# Two commands set up and run everything on a fresh machine:
#   make demo   - create .venv, install, start a server on a temporary store, run the demo pipeline
#   make test   - create .venv, install, run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all test-tools test-browser test-postgres test-labelstudio proto bench bench-quick install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, pinned, so that nothing later pulls a multi-GB CUDA build.
$(STAMP): $(PY) pyproject.toml clients/python/pyproject.toml
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e clients/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/blindspots demo

test: $(STAMP) test-tools test-browser test-postgres
	$(PY) -m pytest -q

test-all: $(STAMP) test-tools test-browser test-postgres
	$(PY) -m pytest -q -m "slow or not slow"

# The labeling round trip against a real Label Studio: installs label-studio into its own venv under
# ~/.cache/blindspots (or BLINDSPOTS_CACHE_DIR) on first use, bounded by BLINDSPOTS_LABEL_STUDIO_INSTALL_TIMEOUT.
test-labelstudio: $(STAMP)
	BLINDSPOTS_LABEL_STUDIO=install $(PY) -m pytest -q -m labelstudio tests/sdk/test_label_studio.py

# A real Prometheus for tests/test_observability.py (Debian's package); idempotent. Where it can't be
# installed (no apt, not root) the test skips and says why.
test-tools:
	@command -v prometheus >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get -o DPkg::Lock::Timeout=300 update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends prometheus; } \
		|| echo "prometheus not installed: tests/test_observability.py will be skipped"

# Debian's PostgreSQL server binaries for the PostgreSQL store's tests (tests/pgtest.py uses a server on
# 127.0.0.1:5432 or BLINDSPOTS_TEST_POSTGRES if there is one, else starts its own with initdb + pg_ctl).
# Unlike the two above, those tests FAIL without it (BLINDSPOTS_TEST_NO_POSTGRES=1 opts out, saying so).
test-postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		{ command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get -o DPkg::Lock::Timeout=300 update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends postgresql; } \
		|| echo "postgresql not installed: the PostgreSQL store tests will fail unless a server is given"

# Debian's Chromium for tests/sdk/test_report.py (renders the HTML report headless); idempotent. Where it
# can't be installed the test skips and says why.
test-browser:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get -o DPkg::Lock::Timeout=300 update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium; } \
		|| echo "chromium not installed: the report rendering test will be skipped"

# The one place generated protobuf/gRPC code comes from; tests/test_proto_fresh.py
# fails when the checked-in files differ from what this produces.
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -I protos --python_out=clients/python --pyi_out=clients/python \
		--grpc_python_out=clients/python protos/blindspots/v1/blindspots.proto

bench: $(STAMP)
	$(PY) bench/run_all.py

bench-quick: $(STAMP)
	$(PY) bench/run_all.py --quick

clean:
	rm -rf $(VENV) demo-output
