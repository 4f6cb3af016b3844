# One command each: `make test`, `make bench`, `make bench-upload` set up .venv themselves.
# The Lambda runtime is python3.13, so the virtualenv is built with it
# (from PATH or pyenv); override with `make PYTHON=/path/to/python3.x`.
PYTHON ?= $(firstword $(foreach candidate,python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13),$(shell $(candidate) -c 'import sys; print("$(candidate)")' 2>/dev/null)))
VENV := .venv
BIN := $(VENV)/bin

.PHONY: test bench bench-upload clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "python3.13 not found; run make PYTHON=/path/to/python3.13" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

test: $(VENV)/.installed
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python -m bench.tiler

bench-upload: $(VENV)/.installed
	$(BIN)/python -m bench.upload_path

clean:
	rm -rf $(VENV) bench/.cache
