# One command each: `make demo`, `make test`, `make bench`, `make bench-upload` set up what they need; `make help`
# lists the targets.
# Two virtualenvs, both built with python3.13, the Lambda runtime (from PATH or pyenv; override with
# `make PYTHON=/path/to/python3.x`): .venv for tests, benchmarks and the demo; .venv-lambda runs Zappa and the
# command line (requirements-deploy.txt). Zappa packages neither: `make package`/`deploy`/`update STAGE=...` hand
# it .build/lambda-RUNTIME-ARCH, requirements.txt from manylinux wheels for the stage's `architecture` and
# `runtime`, whatever this machine is (tools/lambda_site.py).
PYTHON ?= $(firstword $(foreach candidate,python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13),$(shell $(candidate) -c 'import sys; print("$(candidate)")' 2>/dev/null)))
VENV := .venv
BIN := $(VENV)/bin
LAMBDA_VENV := .venv-lambda
STAGE ?= dev

.PHONY: help install demo test bench bench-upload bench-sizing package deploy update clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "python3.13 not found; run make PYTHON=/path/to/python3.13" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# The project itself goes in editable, with its commands (`lambdazoom`, `deepzoom`: pyproject.toml's scripts), so
# they and `python -m lambdazoom` work from any folder; its requirements are the pinned ones installed just before.
# setuptools, the build backend, is there already (Zappa needs it).
$(VENV)/.installed: requirements.txt requirements-deploy.txt requirements-dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(LAMBDA_VENV)/.installed: requirements.txt requirements-deploy.txt
	@test -n "$(PYTHON)" || { echo "python3.13 not found; run make PYTHON=/path/to/python3.13" >&2; exit 1; }
	test -x $(LAMBDA_VENV)/bin/python || $(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-deploy.txt
	touch $@

# The viewers' scripts (OpenSeadragon, geotiff-tilesource) at the versions package-lock.json pins.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

help: ## list the targets
	@awk -F':[^#]*## ' '/^[a-z][a-z -]*:.*## / { gsub(/ /, "|", $$1); printf "  make %-24s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

install: $(VENV)/.installed ## set up .venv, with the lambdazoom and deepzoom commands in .venv/bin

# `make demo IMAGES="a.jpg b.tif"` shows your own images; PORT sets the viewer's port.
demo: $(VENV)/.installed node_modules/.package-lock.json ## convert a sample (or IMAGES="a.jpg b.tif") on a local S3, serve a viewer (PORT=8000)
	$(BIN)/python -m lambdazoom demo $(IMAGES) --port $(or $(PORT),8000)

test: $(VENV)/.installed $(LAMBDA_VENV)/.installed node_modules/.package-lock.json ## set up both virtualenvs, run every test
	$(BIN)/python -m pytest -n 4 --dist worksteal

# zappa package|deploy|update STAGE, packaging the stage's own build of requirements.txt (zappa_settings.json's
# prebuild_script refuses any other virtualenv). `make package` writes lambdazoom-STAGE.zip.
package deploy update: $(LAMBDA_VENV)/.installed ## STAGE=dev (or production): zappa package, deploy or update, built for Lambda's machine
	site=$$($(LAMBDA_VENV)/bin/python tools/lambda_site.py $(STAGE)) && \
	VIRTUAL_ENV=$$site PATH=$(abspath $(LAMBDA_VENV))/bin:$$PATH \
	zappa $@ $(STAGE) $(if $(filter package,$@),-o lambdazoom-$(STAGE).zip)

bench: $(VENV)/.installed ## time the tiler
	$(BIN)/python -m bench.tiler

bench-upload: $(VENV)/.installed ## time a conversion's uploads to a local S3
	$(BIN)/python -m bench.upload_path

bench-sizing: $(VENV)/.installed ## measure memory and time per image size, for the sizing table
	$(BIN)/python -m bench.sizing

clean: ## remove the virtualenvs, the Lambda builds, node_modules and the benchmarks' cache
	rm -rf $(VENV) $(LAMBDA_VENV) .build node_modules bench/.cache
