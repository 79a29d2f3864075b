# CRE Integration. `make run` shows the product, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_DIR := var/run
ZONES := var/zones

SHELL := /bin/bash
.PHONY: setup run test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

run: setup
	@mkdir -p $(RUN_DIR)
	@archive=$$($(BIN)/cre generate --out $(RUN_DIR) --business-date 2026-11-22 --slot 3 \
		--cre-rows 20000 --gesparam-rows 500 --seed 7) && \
	echo "Generated $$archive" && \
	$(BIN)/cre ingest --input $$archive --zones-root $(ZONES) 2>$(RUN_DIR)/ingest.log \
		| tail -n 1 | $(BIN)/python -m json.tool; \
	echo "Logs: $(RUN_DIR)/ingest.log   Zones: $(ZONES)/"; \
	find $(ZONES)/proxy_producer -name '*.avro' -o -name '*.json' | sort

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/python -m pytest -q tests

bench: setup
	$(BIN)/python bench/bench.py

clean:
	rm -rf var .pytest_cache
