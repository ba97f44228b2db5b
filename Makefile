# Panorama: `make up` starts the suite on this machine, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SERVICES := core gateway io compute video_worker
HTTP_SERVICES := gateway io compute
UV_PIP = $(BIN)/uv pip $(1) --python $(BIN)/python
COMPILE := $(BIN)/uv pip compile --quiet --python-version 3.11 --generate-hashes --no-emit-package panorama-core --no-header

.PHONY: help venv up test lint unit rules lock bench images render deploy clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(VENV)/.installed: requirements/bootstrap.txt requirements/dev.txt $(foreach s,$(SERVICES),services/$(s)/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# pip installs only uv (pinned, hashed); uv installs the rest in seconds instead of a minute.
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/bootstrap.txt
	$(call UV_PIP,install) --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(call UV_PIP,install) --quiet --no-deps --no-build-isolation $(foreach s,$(SERVICES),-e services/$(s))
	@touch $@

venv: $(VENV)/.installed ## Create the virtual environment from the pinned requirements

up: venv ## Start gateway, io, compute and the video worker as local processes (Ctrl-C stops all)
	@$(BIN)/python infra/local/run.py

test: lint unit $(if $(shell command -v promtool),rules) ## Lint (ruff, with the ASYNC rules), the alert rules (when promtool is present) and every test against 127.0.0.1 Postgres and Redis

lint: venv
	$(BIN)/ruff check services loadtests infra charts monitoring
	$(BIN)/ruff format --check services loadtests infra charts monitoring

unit: venv
	$(BIN)/pytest

rules: venv ## promtool check and unit-test the alert rules (charts/panorama/files/panorama-rules.yaml)
	$(BIN)/python monitoring/make_rules_test.py --check
	promtool check rules charts/panorama/files/panorama-rules.yaml
	promtool test rules monitoring/rules-test.yaml

lock: venv ## Recompile the pinned, hashed requirements from the pyproject.toml files
	$(COMPILE) requirements/bootstrap.in -o requirements/bootstrap.txt
	$(COMPILE) $(foreach s,$(SERVICES),services/$(s)/pyproject.toml) requirements/dev.in -o requirements/dev.txt
	@for s in $(filter-out core,$(SERVICES)); do \
	  $(COMPILE) services/core/pyproject.toml services/$$s/pyproject.toml -o services/$$s/requirements.txt || exit 1; \
	done

bench: venv ## Run the benchmarks under loadtests/ and write loadtests/results/<timestamp>/
	$(BIN)/python loadtests/run.py $(ARGS)

images: venv ## Build every service image with podman (../shared/containers/podman-ci)
	$(BIN)/python infra/images.py $(ARGS)

render: venv ## Render and lint the Helm chart for each charts/panorama/ci/*-values.yaml
	$(BIN)/python -m infra.deploy render $(ARGS)

deploy: venv ## helm install/upgrade the chart into the current kube context and wait for rollouts
	$(BIN)/python -m infra.deploy install $(ARGS)

clean: ## Remove the virtual environment and local state
	rm -rf $(VENV) .panorama
