# CRE Integration. `make run` shows the product, `make check` lints and runs the unit tier (no
# server, < 2 min), `make test` (CI) runs it and then the integration tier against real servers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_DIR := var/run
ZONES := var/zones
SSTABLE_WRITER := var/sstable-writer/cre-sstable-writer.jar
OPENLINEAGE_SPEC := var/openlineage/OpenLineage.json
OPENLINEAGE_CRATE := datafusion-openlineage-0.0.12

SHELL := /bin/bash
.PHONY: setup monitoring-tools browser-tools run check test test-bulk test-cluster \
	test-reliability lint bench profile clean
# Without CRE_CASSANDRA_HOSTS, run/test/bench use the project's own local Cassandra (cre cassandra
# start: fetched by Maven, started on 127.0.0.1:9042), as its default superuser.
LOCAL_CASSANDRA := CRE_CASSANDRA_HOSTS=127.0.0.1:9042 CRE_CASSANDRA_USERNAME=cassandra \
	CRE_CASSANDRA_PASSWORD=cassandra CRE_CASSANDRA_CONSISTENCY=ONE
# shell prefix: start the local Cassandra when none is configured; $$started says we did
WITH_CASSANDRA := started=""; if [ -z "$$CRE_CASSANDRA_HOSTS" ]; then \
	if ! $(BIN)/cre cassandra status >/dev/null; then $(BIN)/cre cassandra start && started=1; fi \
	&& export $(LOCAL_CASSANDRA); fi

setup: $(VENV)/.installed $(VENV)/.native $(BIN)/prism $(SSTABLE_WRITER) $(OPENLINEAGE_SPEC) \
	monitoring-tools browser-tools

# the OpenLineage spec's JSON Schema (2-0-2) and 12 of its facets' schemas, which the tests check
# the jobs' events against. No registry serves OpenLineage's own copy; the crate
# datafusion-openlineage carries the files unchanged (from OpenLineage 1.50.0) as test fixtures:
# cargo fetches it into its cache, both sha256 sums are checked, the files go to var/openlineage.
$(OPENLINEAGE_SPEC):
	cargo info --quiet datafusion-openlineage@0.0.12 >/dev/null
	mkdir -p $(@D)
	crate=$$(find "$${CARGO_HOME:-$$HOME/.cargo}/registry/cache" -name \
		'$(OPENLINEAGE_CRATE).crate' | head -n1) && \
	echo "c3174cdfb83e6ada02b64b2684f696ca382886cae5ce98d12ec802bbb1392129  $$crate" | \
		sha256sum --quiet -c - && \
	tar -xzf "$$crate" -C $(@D) --strip-components=4 \
		$(OPENLINEAGE_CRATE)/tests/schemas/openlineage/OpenLineage.json \
		$(OPENLINEAGE_CRATE)/tests/schemas/openlineage/facets
	echo "69f68bee00b9beac88a87059c0102410e7bb05f3f43c46d02a0409831eceb0d2  $@" | \
		sha256sum --quiet -c -

# the compiled kernels of the hot path (native/: Rust, PyO3), built by maturin (from PyPI, as
# pip's build backend) with the crates of native/Cargo.lock from crates.io, into the virtualenv.
# The machine's Rust (rustup's): Debian bookworm's 1.63 is older than the lock file's format.
$(VENV)/.native: native/Cargo.toml native/Cargo.lock native/pyproject.toml \
		$(shell find native/src -type f) | $(VENV)/.installed
	@command -v cargo >/dev/null || { echo "make setup: native/ needs Rust 1.78 or later" \
		"(rustup, https://rustup.rs); or run with --hot-path python" >&2; exit 1; }
	$(BIN)/pip install -q ./native
	touch $@

# the bulk writer's JVM half (cassandra/sstable-writer: Cassandra's own SSTable writer and
# loader, Arrow), built by Maven into var/sstable-writer with its dependencies
$(SSTABLE_WRITER): cassandra/sstable-writer/pom.xml $(shell find cassandra/sstable-writer/src -type f)
	mvn -q -f cassandra/sstable-writer/pom.xml package

# Beam's portable runner Prism, the Go binary of the Beam version in requirements.txt, built once
# from the Go module proxy into the virtualenv (the jobs look for it there: pipelines/runners.py)
BEAM_VERSION := $(shell sed -n 's/^apache-beam\[gcp\]==//p' requirements.txt)
$(BIN)/prism: requirements.txt | $(VENV)/.installed
	GOBIN=$(abspath $(BIN)) GOFLAGS=-mod=mod go install \
		github.com/apache/beam/sdks/v2/go/cmd/prism@v$(BEAM_VERSION)
	touch $@

# promtool (the alert rules' tests), Prometheus, the Pushgateway and Alertmanager (the alerting
# test runs its own on free ports) from Debian, once; the system services they come with are
# stopped and disabled.
MONITORING_PACKAGES := prometheus prometheus-pushgateway prometheus-alertmanager
# shell prefix: apt-get install, as root (sudo when not), of the packages that follow it
APT_INSTALL := as_root=$$([ "$$(id -u)" = 0 ] || echo sudo); $$as_root apt-get update -qq && \
	$$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
monitoring-tools:
	@command -v promtool >/dev/null || { $(APT_INSTALL) $(MONITORING_PACKAGES) && \
	for service in $(MONITORING_PACKAGES); do \
		$$as_root service $$service stop; $$as_root update-rc.d $$service disable; \
	done >/dev/null 2>&1; command -v promtool >/dev/null; }

# the console's browser tests drive Debian's Chromium headless through its chromedriver
browser-tools:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	$(APT_INSTALL) chromium chromium-driver && command -v chromedriver >/dev/null; }

$(VENV)/.installed: requirements.txt requirements-dev.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# shell prefix of make run: the superuser only sets up (migrate, then cre db roles with the
# CRE_*_PASSWORD given, else new ones); the product then logs in as the least-privileged roles
WITH_ROLES := $(BIN)/cre db migrate && for role in INGEST SERVICE READER; do \
	variable=CRE_$${role}_PASSWORD; [ -n "$${!variable}" ] || export $$variable=$$($(BIN)/python \
	-c 'import secrets; print(secrets.token_urlsafe(24))'); done && $(BIN)/cre db roles
AS_INGEST = CRE_CASSANDRA_USERNAME=cre_ingest CRE_CASSANDRA_PASSWORD=$$CRE_INGEST_PASSWORD
AS_READER = CRE_CASSANDRA_USERNAME=cre_reader CRE_CASSANDRA_PASSWORD=$$CRE_READER_PASSWORD

run: setup
	@mkdir -p $(RUN_DIR)
	@$(WITH_CASSANDRA) && $(WITH_ROLES) && \
	archive=$$($(BIN)/cre generate --out $(RUN_DIR) --business-date 2026-11-22 --slot 3 \
		--cre-rows 20000 --gesparam-rows 500 --seed 7) && \
	echo "Generated $$archive" && \
	$(AS_INGEST) $(BIN)/cre ingest --input $$archive --zones-root $(ZONES) 2>$(RUN_DIR)/ingest.log \
		| tail -n 1 | $(BIN)/python -m json.tool; \
	echo "Logs: $(RUN_DIR)/ingest.log   Zones: $(ZONES)/"; \
	find $(ZONES)/proxy_producer -name '*.avro' -o -name '*.json' | sort; \
	$(AS_READER) $(BIN)/cre status --date 2026-11-22 && \
	account=$$($(BIN)/python -c "import sys, tarfile; t = tarfile.open(sys.argv[1]); \
		m = next(m for m in t if 'CRE_' in m.name); \
		print(t.extractfile(m).read().split(b'\n')[1].split(b';')[1].decode())" $$archive) && \
	echo "cre query events --account $$account" && \
	$(AS_READER) $(BIN)/cre query events --account $$account && \
	echo "Delivered to Arkea ABS:" && find $(ZONES)/outbound -name '*.tar.bz2' && \
	echo "Cassandra keeps running for your queries: $(BIN)/cre cassandra stop" && \
	echo "In a browser: the operations console of cre serve (docs/operations.md," \
		"\"The operations console\")"

lint: setup
	$(BIN)/ruff check .

# the two tiers split the tests by the `integration` marker (pytest.ini): nothing runs twice;
# the integration tier runs on two workers, a test module each (most of its time is waiting on
# servers), against one Cassandra node; then, with that node stopped, the cluster's quick
# faults (its long campaign is make test-cluster's)
check: setup lint
	$(BIN)/python -m pytest -q -m "not integration" -n 2 tests

test: check
	@$(WITH_CASSANDRA) && $(BIN)/python -m pytest -q --durations=15 \
		-m "integration and not cluster" -n 2 --dist loadfile tests; rc=$$?; \
	if [ -n "$$started" ]; then $(BIN)/cre cassandra stop; fi; [ $$rc = 0 ] || exit $$rc
	$(BIN)/python -m pytest -q --durations=10 -m "cluster and not campaign" tests

# the structured zone's, the delivery's and the recovery's tests again with every ingest in bulk
# mode (--load-mode bulk through $CRE_LOAD_MODE): the same answers whichever way the rows came
test-bulk: setup
	@$(WITH_CASSANDRA) && CRE_LOAD_MODE=bulk $(BIN)/python -m pytest -q --durations=10 \
		-m "integration and not cluster" -n 2 --dist loadfile tests/test_structured_zone.py \
		tests/test_deliver.py tests/test_positions.py tests/test_recovery.py; rc=$$?; \
	if [ -n "$$started" ]; then $(BIN)/cre cassandra stop; fi; [ $$rc = 0 ] || exit $$rc

# every fault of the structured zone on a three-node cluster (tests/test_cassandra_cluster.py,
# which starts its own on free ports): make test's quick ones, and the campaign of a node killed
# mid-load, a rolling restart, two nodes lost, the bulk path's faults and a restore; one test at
# a time, as three Cassandra JVMs fill two cores
test-cluster: setup
	$(BIN)/python -m pytest -q --durations=10 -m cluster tests

# the reliability campaign (bench/reliability.py, under an hour): load, faults, hostile clients
# and a soak, on a cluster and a node of its own; prints the table of docs/reliability.md and
# writes it there. Its quick scenario is in make test (tests/test_reliability.py).
test-reliability: setup
	$(BIN)/python bench/reliability.py

# the product measured as an installed package runs it: its modules' bytecode compiled once
# (even where $$PYTHONDONTWRITEBYTECODE keeps Python from writing it)
COMPILE_BYTECODE := $(BIN)/python -m compileall -q pipelines transforms io_connectors schemas
bench: setup
	@$(COMPILE_BYTECODE)
	@$(WITH_CASSANDRA) && $(BIN)/python bench/bench.py

# where the time of the 1M-row ingest and its delivery goes, stage by stage (py-spy)
profile: setup
	@$(COMPILE_BYTECODE)
	@$(WITH_CASSANDRA) && $(BIN)/python bench/profile.py

clean:
	rm -rf var .pytest_cache
