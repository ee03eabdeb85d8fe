# rampart — developer entry points.
#
# Every target is a thin call into scripts/ so that humans, `make` and CI
# (.ci/run -> `make test`) all run exactly the same commands; the logic and
# its reasons live in the scripts.
#
#   make test      everything CI checks: tools, database, fmt, deny, clippy, tests, schemathesis
#   make schemathesis  contract-fuzz a running server against its OpenAPI document
#   make lint      fmt check + clippy + cargo-deny, no database needed
#   make run       start a database and the dev server (scripts/run-dev)
#   make bench     scripts/bench
#   make db-up     make sure a Postgres superuser URL works -> target/rampart-db.env
#   make redis-up  make sure a Redis answers (shared rate-limit tests) -> target/rampart-redis.env
#   make db-stop   stop the project-local Postgres cluster (never a system one)
#
# Env knobs are documented in the scripts (DATABASE_URL, RAMPART_BROWSER_TESTS,
# RAMPART_DB_SKIP_SYSTEM, ...).

SHELL := /bin/bash
# Fail a recipe line on the first failing command, including inside pipes.
.SHELLFLAGS := -euo pipefail -c
# cargo-installed tools (cargo-deny, cargo-nextest) live here; CI and
# non-login shells don't always have it on PATH.
export PATH := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin:$(PATH)

DB_ENV := target/rampart-db.env
# The Python with `cryptography` that scripts/ensure-tools makes, for the Fernet interop tests.
export RAMPART_PYTHON := $(CURDIR)/target/py-venv/bin/python
REDIS_ENV := target/rampart-redis.env

# Export the URL db-up found as RAMPART_PG_ADMIN_URL and, for the test suite,
# TEST_DATABASE_URL. The URL is read out of the env file rather than sourced:
# a URL kept from DATABASE_URL may carry a ?query with '&', which a shell
# would execute.
load_db = RAMPART_PG_ADMIN_URL="$$(sed -n 's/^RAMPART_PG_ADMIN_URL=//p' $(DB_ENV))"; \
	export RAMPART_PG_ADMIN_URL TEST_DATABASE_URL="$$RAMPART_PG_ADMIN_URL";
load_redis = TEST_REDIS_URL="$$(sed -n 's/^RAMPART_REDIS_URL=//p' $(REDIS_ENV))"; \
	export TEST_REDIS_URL;

# $(call step,LABEL,COMMAND): run COMMAND and print its wall time. Each recipe
# line is a fresh bash, so $$SECONDS is the time spent on this line. The time
# is printed on failure too, then the failure is passed on.
define step
	@echo "==> $(1)"; \
	if $(2); then rc=0; else rc=$$?; fi; \
	if [ $$rc -eq 0 ]; then echo "<== $(1): $${SECONDS}s"; \
	else echo "<== $(1): FAILED (exit $$rc) after $${SECONDS}s"; fi; \
	exit $$rc
endef

# nextest runs test binaries in parallel processes and reports better; it is
# optional (not installed by ensure-tools), so fall back to cargo test.
run_tests = if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --no-fail-fast; \
	else \
		cargo test --no-fail-fast; \
	fi

.PHONY: help test lint run bench db-up db-stop redis-up schemathesis

help:
	@sed -n '/^#   make/s/^#   //p' $(firstword $(MAKEFILE_LIST))

test:
	$(call step,ensure-tools,scripts/ensure-tools)
	$(call step,db-up,scripts/db-up)
	$(call step,redis-up,scripts/redis-up)
	$(call step,cargo fmt --check,cargo fmt --check)
	$(call step,cargo deny,cargo deny check licenses bans sources)
	$(call step,cargo clippy,cargo clippy --all-targets -- -D warnings)
	$(call step,tests,$(load_db) $(load_redis) $(run_tests))
	$(call step,schemathesis,$(load_db) scripts/schemathesis)

# Lint needs no database and no browser; ensure-tools is a no-op when
# cargo-deny is already installed.
lint:
	$(call step,ensure-tools,RAMPART_BROWSER_TESTS=0 scripts/ensure-tools)
	$(call step,cargo fmt --check,cargo fmt --check)
	$(call step,cargo clippy,cargo clippy --all-targets -- -D warnings)
	$(call step,cargo deny,cargo deny check licenses bans sources)

run: db-up
	@$(load_db) scripts/run-dev

bench:
	scripts/bench

schemathesis: db-up
	@$(load_db) scripts/schemathesis

db-up:
	@scripts/db-up

db-stop:
	@scripts/db-up --stop
	@scripts/redis-up --stop

redis-up:
	@scripts/redis-up
