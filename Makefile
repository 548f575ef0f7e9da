# One command per job; each does its own set-up on a fresh machine.
PYTHON ?= python3
CHROMIUM := /usr/bin/chromium
REDIS := /usr/bin/redis-server
HAPROXY := /usr/sbin/haproxy
REPLICAS ?= 2
PORT ?= 8501
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint docs demo bench loadtest bench-live flood structure clean cluster cluster-stop \
	loadtest-cluster test-compat dist test-wheel

# Debian's Chromium for the browser tests; Playwright never downloads a browser here.
$(CHROMIUM):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium

# A real redis-server for the store tests (they start their own on a free port).
$(REDIS):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server

# HAProxy, the load balancer of `make cluster` and of its tests (deploy/haproxy.cfg).
$(HAPROXY):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq haproxy

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples deploy tools mkdocs_hooks.py
	$(VENV)/bin/mypy src
	$(VENV)/bin/lint-imports

# The docs site (mkdocs.yml) into site/: --strict, so a broken link or API reference fails.
# Offline: no web fonts, no remote inventories. Not --quiet: it hides the warnings that
# --strict turns into a failure, and the build then passes.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

test: lint docs $(CHROMIUM) $(REDIS) $(HAPROXY)
	$(PY) -m pytest

# The core suite (not the browser, cluster or load tests) against a sample of Streamlit minors
# (tools/compat.py's SAMPLE: 1.40 1.45 1.52 1.60 newest), each in its own venv under .compat/;
# COMPAT_VERSIONS="1.40 newest" picks others.
COMPAT_VERSIONS ?=
test-compat: $(REDIS) $(HAPROXY)
	$(PYTHON) tools/compat.py $(COMPAT_VERSIONS)

# The wheel and the sdist in dist/ (the sdist built first, the wheel from it), checked as PyPI
# checks them.
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# The wheel from `make dist` installed with pip in three fresh venvs, next to the oldest supported
# Streamlit, 1.52 and the newest, running the README's quick start (tests/test_package.py;
# needs PyPI; about a minute: each venv installs ~115 MB of wheels, which pip's HTTP cache
# does not keep behind this machine's registry proxy).
test-wheel: dist
	SAFESTATE_WHEEL_DIR=dist $(PY) -m pytest -s tests/test_package.py

demo: $(STAMP)
	DEMO_ADMIN_PASSWORD=$${DEMO_ADMIN_PASSWORD:-demo-admin} $(VENV)/bin/streamlit run examples/demo/app.py --server.address 127.0.0.1 --server.headless true --browser.gatherUsageStats false

# A real deployment on this machine: HAProxy on 127.0.0.1:$(PORT) in front of $(REPLICAS) demo
# replicas sharing one redis-server (deploy/cluster.py). Ctrl-C, or `make cluster-stop`, stops it.
cluster: $(STAMP) $(HAPROXY) $(REDIS)
	$(PY) deploy/cluster.py --replicas $(REPLICAS) --port $(PORT)

cluster-stop:
	$(PYTHON) deploy/cluster.py stop

# The load test through the load balancer: 1 replica against 2, the same click rate; clicks
# served at p99 < 250 ms, CPU and Redis work per click. Streamlit's defaults, then with
# runner.postScriptGC=false. About 15 min; LOADTEST_CLUSTER_ARGS="--repeats 3" for medians.
loadtest-cluster: $(STAMP) $(HAPROXY) $(REDIS)
	$(PY) benchmarks/loadtest_cluster.py --sessions 10,20,30,40 $(LOADTEST_CLUSTER_ARGS)
	$(PY) benchmarks/loadtest_cluster.py --sessions 40,80,120,160,240 \
		--streamlit-option runner.postScriptGC=false --out docs/loadtest-cluster-nogc.md \
		$(LOADTEST_CLUSTER_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_stores.py

# N real websocket sessions against the demo, with safestate and with plain st.session_state
# (about 11 min; LOADTEST_ARGS="--repeats 3" for medians of three, see --help).
loadtest: $(STAMP)
	$(PY) benchmarks/loadtest.py $(LOADTEST_ARGS)

# Live updates vs polling on the Shared board in real Chromium: click-to-screen latency (one
# process; two on one redis-server), idle CPU and CPU per post with 20 viewers. 5-6 min;
# LIVE_ARGS="--repeats 3" for medians of three, see --help. Needs Chromium and redis-server.
bench-live: $(STAMP) $(CHROMIUM) $(REDIS)
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) benchmarks/bench_live.py $(LIVE_ARGS)

# Defect D5: one session floods the app with click reruns; server threads, lost and stale
# updates, plain vs safestate (memory, SQLite, Redis). About 2 min; see --help, e.g.
# FLOOD_ARGS="--variants plain,sqlite --repeats 3" or "--clicks 2000 --seconds 15". Its redis
# variant needs redis-server (`make test` installs it).
flood: $(STAMP)
	$(PY) benchmarks/bench_flood.py $(FLOOD_ARGS)

# Import cycles, private-attribute wiring, top-level names, longest module and function
# (docs/architecture.md); STRUCTURE_ARGS="--src /path/to/other/src" measures another checkout.
structure: $(STAMP)
	$(PY) benchmarks/structure.py $(STRUCTURE_ARGS)

clean:
	rm -rf $(VENV) build dist site .compat src/*.egg-info .pytest_cache .mypy_cache .ruff_cache \
		.cluster
