# cnilab: `sudo make demo` replays the lab, `sudo make test` runs the whole suite.
# Both start by installing what is missing: system tools with apt-get (Debian/Ubuntu) or dnf
# (Fedora/RHEL), Python packages into .venv (so the system Python is left alone). Elsewhere they
# say what to install.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
APT_PACKAGES := iproute2 iptables nftables iputils-ping procps net-tools tcpdump curl containernetworking-plugins
DNF_PACKAGES := iproute iptables-nft nftables iputils procps-ng python3 containernetworking-plugins net-tools tcpdump curl
# `make test` also drives a real libcni-based runtime (Podman with its CNI backend) over cnilab,
# and a real headless browser (chromium, Debian's and Fedora's name) over `cnilab serve`'s page.
TEST_PACKAGES := podman runc chromium
# Which package manager installs the system tools: apt (Debian, Ubuntu), dnf (Fedora, RHEL 9
# and its rebuilds), or none (say what to install).
PKG_TOOL := $(shell command -v apt-get >/dev/null 2>&1 && echo apt || \
                    { command -v dnf >/dev/null 2>&1 && echo dnf; } || echo other)
STAMP  := $(VENV)/.installed
# Extra apt-get install options (the Docker test's packages come without their recommends).
APT_FLAGS ?=

.PHONY: help deps system-deps system-deps-apt system-deps-dnf system-deps-other demo test unit lint bench docs clean

help:
	@echo "sudo make demo    install what is missing, then replay the eight steps (isolated lab)"
	@echo "sudo make test    install what is missing, then run every test (kernel tests need root)"
	@echo "make unit         unit tests only (no root)"
	@echo "make lint         ruff and mypy"
	@echo "sudo make bench   benchmarks, side by side with the bash / reference-plugin baselines"
	@echo "make docs         docs/cli.md from every command's --help"

system-deps: system-deps-$(PKG_TOOL)

system-deps-apt:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_FLAGS) $$missing; \
	fi

# --whatprovides: a name another package provides (iptables by iptables-nft) counts as there.
system-deps-dnf:
	@missing=""; \
	for p in $(DNF_PACKAGES); do rpm -q --whatprovides $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; dnf install -y -q $$missing; fi

# No package manager we know: check the commands themselves and name what provides them.
system-deps-other:
	@PATH="$$PATH:/usr/sbin:/sbin"; missing=""; \
	for c in ip iptables ping sysctl nsenter; do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	$(PYTHON) -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' 2>/dev/null \
	  || missing="$$missing python>=3.9+venv"; \
	if [ -n "$$missing" ]; then \
	  echo "cnilab: neither apt-get nor dnf here, and these are missing:$$missing"; \
	  echo "install them with your package manager: iproute2 (ip), iptables, iputils (ping),"; \
	  echo "procps (sysctl), util-linux (nsenter), Python 3.9 or later with venv and ensurepip;"; \
	  echo "optionally the reference CNI plugins (containernetworking-plugins). Then run make again."; \
	  exit 1; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade 'pip>=21.3'  # editable installs from pyproject.toml; Debian 11 has 20.3
	$(BIN)/pip install -q -e '.[test]'
	# Bytecode for every module now: where PYTHONDONTWRITEBYTECODE is set (many container
	# images set it) Python would otherwise compile each module from source at every start.
	$(BIN)/python -m compileall -q -j 0 $(VENV) cnilab > /dev/null
	touch $(STAMP)

deps: system-deps $(STAMP)

demo: deps
	$(BIN)/cnilab doctor
	$(BIN)/cnilab run-all $(if $(KEEP),,--teardown)

test: deps
	@$(MAKE) -s system-deps APT_PACKAGES="$(TEST_PACKAGES)" DNF_PACKAGES="$(TEST_PACKAGES)"
	@# A real dockerd (inside a namespace of the test's own) for `cni attach --container`, its
	@# containers from busybox: docker.io without its recommends (apparmor, needrestart, ...), and
	@# only where no dockerd or busybox is there (docker.io would replace a docker-ce, and
	@# busybox-static the busybox package). The client is docker.io's up to Debian 12 and
	@# docker-cli's from Debian 13 on. Installed on CI machines only (CI set, as .ci/run runs):
	@# on a student's machine installing docker.io starts a dockerd, which sets the machine's
	@# FORWARD policy to DROP. Elsewhere the Docker test says it is skipped, and why.
	@[ -n "$$CI" ] || { command -v dockerd >/dev/null 2>&1 || \
	  echo "not installing docker.io (it would start a dockerd on this machine): the Docker test is skipped; CI=1 installs it"; exit 0; }; \
	  pkgs=""; command -v dockerd >/dev/null 2>&1 || pkgs="docker.io"; \
	  command -v busybox >/dev/null 2>&1 || pkgs="$$pkgs busybox-static"; \
	  [ -z "$$pkgs" ] || $(MAKE) -s system-deps APT_PACKAGES="$$pkgs" DNF_PACKAGES="" \
	    APT_FLAGS=--no-install-recommends; \
	  command -v docker >/dev/null 2>&1 || [ "$(PKG_TOOL)" != apt ] || \
	    $(MAKE) -s system-deps APT_PACKAGES="docker-cli" APT_FLAGS=--no-install-recommends
	$(BIN)/ruff check cnilab tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check cnilab tests bench
	$(BIN)/mypy

# docs/cli.md is the commands' own --help (a test checks it is current).
docs: $(STAMP)
	$(BIN)/python -m cnilab.cli.reference > docs/cli.md

bench: deps
	$(BIN)/python bench/bench_lab.py
	@for b in bench/bench_cni.py bench/bench_cluster.py bench/bench_cluster_scale.py bench/bench_trace.py; do \
	  [ -f $$b ] && $(BIN)/python $$b || true; done

clean:
	rm -rf $(VENV) dist build *.egg-info .pytest_cache .ruff_cache
