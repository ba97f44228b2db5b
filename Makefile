# Panorama: `make up` starts the suite on this machine, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SERVICES := core gateway io compute video_worker
HTTP_SERVICES := gateway io compute
# Dev-only packages: installed in the venv for tests and benchmarks, never in an image.
DEV_PACKAGES := testing
UV_PIP = $(BIN)/uv pip $(1) --python $(BIN)/python
COMPILE := $(BIN)/uv pip compile --quiet --python-version 3.11 --generate-hashes --no-emit-package panorama-core --no-header

.PHONY: help venv up test test-fast lint unit unit-fast rules lock bench images kubeplay render deploy clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(VENV)/.installed: requirements/bootstrap.txt requirements/dev.txt $(foreach s,$(SERVICES),services/$(s)/pyproject.toml) $(foreach p,$(DEV_PACKAGES),$(p)/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# pip installs only uv (pinned, hashed); uv installs the rest in seconds instead of a minute.
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/bootstrap.txt
	$(call UV_PIP,install) --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(call UV_PIP,install) --quiet --no-deps --no-build-isolation $(foreach s,$(SERVICES),-e services/$(s)) $(foreach p,$(DEV_PACKAGES),-e $(p))
	@touch $@

venv: $(VENV)/.installed ## Create the virtual environment from the pinned requirements

up: venv ## Start gateway, io, compute and the video worker as local processes (Ctrl-C stops all)
	@$(BIN)/python infra/local/run.py

test: lint unit $(if $(shell command -v promtool),rules) ## Lint (ruff, with the ASYNC rules), the alert rules (when promtool is present) and every test against 127.0.0.1 Postgres and Redis

lint: venv
	$(BIN)/ruff check services testing tests loadtests infra charts monitoring
	$(BIN)/ruff format --check services testing tests loadtests infra charts monitoring

test-fast: lint unit-fast ## Lint and run each service's own tests, without the whole-stack tests under tests/stack

unit: venv
	$(BIN)/pytest

unit-fast: venv
	$(BIN)/pytest --ignore=tests/stack

rules: venv ## promtool check and unit-test the alert rules (charts/panorama/files/panorama-rules.yaml)
	$(BIN)/python monitoring/make_rules_test.py --check
	promtool check rules charts/panorama/files/panorama-rules.yaml
	promtool test rules monitoring/rules-test.yaml

lock: venv ## Recompile the pinned, hashed requirements from the pyproject.toml files
	$(COMPILE) requirements/bootstrap.in -o requirements/bootstrap.txt
	@# One set of versions: every service resolved together first, then the dev tools and each image
	@# constrained to that set, so the tests run the versions the images ship (infra/tests/test_versions.py).
	$(COMPILE) $(foreach s,$(SERVICES),services/$(s)/pyproject.toml) -o requirements/runtime.txt
	$(COMPILE) -c requirements/runtime.txt $(foreach s,$(SERVICES),services/$(s)/pyproject.toml) \
	  $(foreach p,$(DEV_PACKAGES),$(p)/pyproject.toml) requirements/dev.in \
	  -o requirements/dev.txt
	@for s in $(filter-out core,$(SERVICES)); do \
	  $(COMPILE) -c requirements/runtime.txt services/core/pyproject.toml services/$$s/pyproject.toml \
	    -o services/$$s/requirements.txt || exit 1; \
	done

bench: venv ## Run the benchmarks under loadtests/ and write loadtests/results/<timestamp>/
	$(BIN)/python loadtests/run.py $(ARGS)

images: venv ## Build every service image with the podman or docker on the PATH (PANORAMA_CONTAINER_TOOL chooses)
	$(BIN)/python infra/images.py $(ARGS)

kubeplay: venv ## After `make images`: the rendered chart under `podman kube play` (infra/tests/test_kubeplay.py)
	PANORAMA_KUBEPLAY_TEST=1 $(BIN)/pytest infra/tests/test_kubeplay.py -p no:cacheprovider $(ARGS)

render: venv ## Render and lint the Helm chart for each charts/panorama/ci/*-values.yaml
	$(BIN)/python -m infra.deploy render $(ARGS)

deploy: venv ## helm install/upgrade the chart into the current kube context and wait for rollouts
	$(BIN)/python -m infra.deploy install $(ARGS)

clean: ## Remove the virtual environment and local state
	rm -rf $(VENV) .panorama
