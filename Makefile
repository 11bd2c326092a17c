# ocirt: `make demo` and `make test` each set up everything they need on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
PY := $(CURDIR)/$(VENV)/bin/python
APT_PACKAGES := libcap2-bin python3 python3-venv python3-dev gcc libffi-dev libseccomp-dev busybox-static runc crun iproute2 util-linux criu podman conmon containerd docker.io skopeo umoci docker-registry nftables apache2-utils curl openssl zstd uidmap
# CRIU 4.1 is built from source (tools/build-criu.sh): bookworm's 3.17 fails on kernels >= 6.13
APT_PACKAGES += libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnftables-dev libnl-3-dev libprotobuf-c-dev libprotobuf-dev pkg-config protobuf-c-compiler protobuf-compiler uuid-dev
CRIU := $(VENV)/bin/criu
STAMP := $(VENV)/.installed

.PHONY: install apt ext demo test lint typecheck pytest bench clean criu conformance

install: $(STAMP)

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt: installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# setuptools' default editable mode imports pathlib and re at every interpreter start (about
# 20 ms here); strict mode writes a plain path instead, and linking whole folders into its
# tree lets new modules appear without a reinstall.
$(STAMP): pyproject.toml setup.py runtime/syscalls_build.py runtime/launcher.py runtime/launcher.c | apt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=strict
	tree=$$(cat $(VENV)/lib/python3.11/site-packages/__editable__.ocirt-*.pth); \
	for d in foundation runtime shim manager specs conformance testing; do \
		rm -rf "$$tree/ocirt/$$d" && ln -s "$(CURDIR)/$$d" "$$tree/ocirt/$$d"; \
	done
	$(PY) -m ocirt.runtime.launcher $(VENV)/bin/ocirt
	$(PY) -m ocirt.runtime.launcher $(VENV)/bin/ocirt-shim ocirt.shim.main
	$(PY) -m compileall -q foundation runtime specs conformance testing shim >/dev/null
	touch $(STAMP)

ext: install
	$(PY) setup.py -q build_ext --inplace

demo: install
	$(PY) -m ocirt.testing.demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The packages are checked by import name (as installed), tests and bench as files.
typecheck: install
	$(VENV)/bin/mypy -p ocirt.foundation -p ocirt.runtime -p ocirt.specs -p ocirt.conformance -p ocirt.testing -p ocirt.shim -p ocirt.manager
	$(VENV)/bin/mypy tests bench

criu: $(CRIU)

$(CRIU): tools/build-criu.sh | apt
	bash tools/build-criu.sh $(CRIU)

# Tests run in a random order (pytest-randomly, loaded once installed: a test that leans on
# what another left behind fails here); SEED replays one (`make pytest SEED=1234`).
SEED ?= $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
# evaluated once: a plain ?= would draw a new seed at every reference
SEED := $(SEED)
pytest: install $(CRIU)
	@echo "pytest: random order, seed $(SEED) (replay: make pytest SEED=$(SEED))"
	$(VENV)/bin/pytest -q --randomly-seed=$(SEED)

test: install lint typecheck pytest

# The OCI conformance suite against runc, crun and ocirt: one table, case x runtime.
conformance: install
	$(PY) -m ocirt.conformance --compare runc,crun,ocirt

bench: install
	$(PY) bench/lifecycle.py
	$(PY) bench/shim.py
	$(PY) bench/images.py
	$(PY) bench/manager.py

clean:
	rm -rf $(VENV) build *.egg-info runtime/_syscalls.*
