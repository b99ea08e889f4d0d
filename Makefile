# telerad: `make run` starts the platform with embedded defaults and demo data;
# `make test` runs the whole suite. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OHIF_VERSION := 3.12.0
OHIF_DIR := vendor/ohif
# Chart.js and htmx for the worklist pages, as published on the npm registry (no CDN).
CHARTJS_VERSION := 4.6.1
HTMX_VERSION := 2.0.11
WEB_DIR := vendor/web
WEB_STAMP := $(WEB_DIR)/.chartjs-$(CHARTJS_VERSION)-htmx-$(HTMX_VERSION)
# Swagger UI for /docs, as published on the npm registry (no CDN).
SWAGGER_UI_VERSION := 5.35.0
SWAGGER_UI_DIR := vendor/swagger-ui
SWAGGER_UI_STAMP := $(SWAGGER_UI_DIR)/.swagger-ui-dist-$(SWAGGER_UI_VERSION)
APT_PACKAGES := dcmtk chromium orthanc orthanc-dicomweb haproxy dicom3tools poppler-utils libpango-1.0-0 libpangoft2-1.0-0
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: install run test lint bench clean

install: .install-stamp-apt .install-stamp-venv $(OHIF_DIR)/index.html $(WEB_STAMP) $(SWAGGER_UI_STAMP)

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

$(WEB_STAMP):
	@rm -rf $(WEB_DIR).tmp && mkdir -p $(WEB_DIR).tmp
	cd $(WEB_DIR).tmp && npm pack --silent chart.js@$(CHARTJS_VERSION) htmx.org@$(HTMX_VERSION) >/dev/null \
	  && mkdir chart htmx && tar xzf chart.js-$(CHARTJS_VERSION).tgz -C chart && tar xzf htmx.org-$(HTMX_VERSION).tgz -C htmx
	@rm -rf $(WEB_DIR) && mkdir -p $(WEB_DIR) \
	  && cp $(WEB_DIR).tmp/chart/package/dist/chart.umd.min.js $(WEB_DIR).tmp/chart/package/LICENSE.md $(WEB_DIR)/ \
	  && cp $(WEB_DIR).tmp/htmx/package/dist/htmx.min.js $(WEB_DIR)/ \
	  && cp $(WEB_DIR).tmp/htmx/package/LICENSE $(WEB_DIR)/LICENSE.htmx \
	  && mv $(WEB_DIR)/LICENSE.md $(WEB_DIR)/LICENSE.chartjs.md && rm -rf $(WEB_DIR).tmp && touch $@

$(SWAGGER_UI_STAMP):
	@rm -rf $(SWAGGER_UI_DIR).tmp && mkdir -p $(SWAGGER_UI_DIR).tmp
	cd $(SWAGGER_UI_DIR).tmp && npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) >/dev/null \
	  && tar xzf swagger-ui-dist-$(SWAGGER_UI_VERSION).tgz
	@rm -rf $(SWAGGER_UI_DIR) && mkdir -p $(SWAGGER_UI_DIR) \
	  && for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png LICENSE NOTICE; do \
	    cp $(SWAGGER_UI_DIR).tmp/package/$$f $(SWAGGER_UI_DIR)/ || exit 1; done \
	  && rm -rf $(SWAGGER_UI_DIR).tmp && touch $@

run: install
	$(BIN)/telerad serve --demo

# The whole suite, in three timed passes (docs/testing.md): the unit tier (no I/O, one
# core, under 30 s), the integration and end-to-end tiers on both cores (pytest-xdist,
# a test file per worker), then the tests marked serial alone (several processes each,
# or measurements of a server's memory and threads; none marked is fine: pytest's exit
# status 5). Every pass runs; any failure fails.
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider
test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	@status=0; start=$$SECONDS; \
	echo "== unit tier"; $(PYTEST) tests/unit || status=1; unit=$$((SECONDS - start)); \
	echo "== integration and e2e tiers, two workers"; \
	$(PYTEST) tests/integration tests/e2e -n 2 --dist loadfile -m "not serial" --durations=25 || status=1; \
	echo "== serial tests"; $(PYTEST) tests/integration tests/e2e -m serial --durations=10 \
	  || [ $$? -eq 5 ] || status=1; \
	echo "unit tier: $$unit s; whole suite: $$((SECONDS - start)) s"; exit $$status

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python -m bench.archive

clean:
	rm -rf $(VENV) .install-stamp-* vendor
