# telerad: `make run` starts the platform with embedded defaults and demo data;
# `make test` runs the whole suite. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OHIF_VERSION := 3.12.0
OHIF_DIR := vendor/ohif
APT_PACKAGES := dcmtk chromium orthanc orthanc-dicomweb
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: install run test lint bench clean

install: .install-stamp-apt .install-stamp-venv $(OHIF_DIR)/index.html

.install-stamp-apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

.install-stamp-venv: pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# The unmodified OHIF Viewer build, as published on the npm registry.
$(OHIF_DIR)/index.html:
	@rm -rf $(OHIF_DIR).tmp && mkdir -p $(OHIF_DIR).tmp
	cd $(OHIF_DIR).tmp && npm pack --silent @ohif/app@$(OHIF_VERSION) >/dev/null && tar xzf ohif-app-$(OHIF_VERSION).tgz
	@rm -rf $(OHIF_DIR) && mv $(OHIF_DIR).tmp/package/dist $(OHIF_DIR) && rm -rf $(OHIF_DIR).tmp

run: install
	$(BIN)/telerad serve --demo

test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python -m bench.archive

clean:
	rm -rf $(VENV) .install-stamp-* vendor
