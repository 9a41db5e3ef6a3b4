# cnilab: `sudo make demo` replays the lab, `sudo make test` runs the whole suite.
# Both start by installing what is missing: system tools with apt-get (Debian/Ubuntu),
# Python packages into .venv (so the system Python is left alone).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
APT_PACKAGES := iproute2 iptables iputils-ping procps net-tools containernetworking-plugins
STAMP  := $(VENV)/.installed

.PHONY: help deps system-deps demo test unit lint bench clean

help:
	@echo "sudo make demo    install what is missing, then replay the eight steps (isolated lab)"
	@echo "sudo make test    install what is missing, then run every test (kernel tests need root)"
	@echo "make unit         unit tests only (no root)"
	@echo "make lint         ruff"
	@echo "sudo make bench   benchmarks, side by side with the bash / reference-plugin baselines"

system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "please install:$$missing (not a Debian/Ubuntu machine)"; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

deps: system-deps $(STAMP)

demo: deps
	$(BIN)/cnilab doctor
	$(BIN)/cnilab run-all $(if $(KEEP),,--teardown)

test: deps
	$(BIN)/ruff check cnilab tests bench
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check cnilab tests bench

bench: deps
	$(BIN)/python bench/bench_lab.py
	@for b in bench/bench_cni.py bench/bench_cluster.py; do \
	  [ -f $$b ] && $(BIN)/python $$b || true; done

clean:
	rm -rf $(VENV) dist build *.egg-info .pytest_cache .ruff_cache
