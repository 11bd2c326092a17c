# ocirt: `make demo` and `make test` each set up everything they need on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
PY := $(CURDIR)/$(VENV)/bin/python
APT_PACKAGES := python3 python3-venv python3-dev gcc libffi-dev libseccomp-dev busybox-static runc crun iproute2 util-linux
STAMP := $(VENV)/.installed

.PHONY: install apt ext demo test lint typecheck pytest bench clean

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
$(STAMP): pyproject.toml setup.py runtime/syscalls_build.py | apt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=strict
	tree=$$(cat $(VENV)/lib/python3.11/site-packages/__editable__.ocirt-*.pth); \
	for d in runtime shim manager specs conformance; do \
		rm -rf "$$tree/ocirt/$$d" && ln -s "$(CURDIR)/$$d" "$$tree/ocirt/$$d"; \
	done
	$(PY) -m ocirt.runtime.launcher $(VENV)/bin/ocirt
	$(PY) -m compileall -q runtime specs conformance >/dev/null
	touch $(STAMP)

ext: install
	$(PY) setup.py -q build_ext --inplace

demo: install
	$(PY) -m ocirt.conformance.demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The packages are checked by import name (as installed), tests and bench as files.
typecheck: install
	$(VENV)/bin/mypy -p ocirt.runtime -p ocirt.specs -p ocirt.conformance -p ocirt.shim -p ocirt.manager
	$(VENV)/bin/mypy tests bench

pytest: install
	$(VENV)/bin/pytest -q

test: install lint typecheck pytest

bench: install
	$(PY) bench/lifecycle.py

clean:
	rm -rf $(VENV) build *.egg-info runtime/_syscalls.*
