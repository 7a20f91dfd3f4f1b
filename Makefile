# Every target creates .venv on first use and installs the pinned dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: run test test-fast bench lint constraints clean server deploy worker alerts

# The local Prefect server that `make deploy`, `make worker` and `make alerts` talk to.
# `prefect server start --port` alone moves the API but not the address the UI calls:
# Prefect builds that from PREFECT_UI_API_URL, else PREFECT_API_URL, else the
# PREFECT_SERVER_API_HOST/PORT settings, so the server gets all of them.
PREFECT_PORT ?= 4200
PREFECT_API := http://127.0.0.1:$(PREFECT_PORT)/api
SERVER_ENV := PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=$(PREFECT_PORT) \
	PREFECT_API_URL=$(PREFECT_API) PREFECT_UI_API_URL=$(PREFECT_API)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mnist-flow run $(ARGS)

# Three pytest-xdist workers on two cores: many tests wait for commands, servers and flow
# runs of other processes, and a third worker fills those waits (`make test`: 427 s with two,
# 408 s with three; later, back to back, 371 s with three and 412 s with four). A module's
# tests stay on one worker, so its fixtures are made once (session fixtures: once per
# worker); tests/conftest.py names the few other work units (UNITS) and hands the longest
# out first (LONGEST_FIRST), so the workers end together.
# The fast tests are nearly all CPU work: two workers, one per core. PYTEST_WORKERS= (or
# FAST_WORKERS=) runs serially.
PYTEST_WORKERS ?= -n 3 --dist loadfile
FAST_WORKERS ?= -n 2 --dist loadfile

# The tests' Python processes (workers, commands, servers: about a hundred) read the project's
# bytecode, and pytest its rewritten test modules, from __pycache__ instead of compiling them
# again each time, also where the environment turns bytecode caches off.
test test-fast: export PYTHONDONTWRITEBYTECODE =

# Every test, as CI runs them; the 15 slowest are listed, so the next slowdown shows.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_WORKERS) --durations=15 $(ARGS)

# Everything but the tests marked slow (flow runs, subprocesses, servers).
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(FAST_WORKERS) -m "not slow" $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(ARGS)

constraints: $(STAMP)
	head -n 2 constraints.txt > constraints.txt.new
	$(BIN)/python -m pip freeze --exclude-editable >> constraints.txt.new
	mv constraints.txt.new constraints.txt

server: $(STAMP)
	$(SERVER_ENV) $(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# Creates the work pool if missing, then deploys everything in prefect.yaml to the server above
# (never to a temporary one). make does not update PWD, which prefect.yaml's pull step reads.
deploy: $(STAMP)
	@$(BIN)/python -c "import urllib.request as u; u.urlopen('$(PREFECT_API)/health', timeout=5)" \
		2>/dev/null || { echo "no Prefect server at $(PREFECT_API): run 'make server' first" >&2; exit 1; }
	PREFECT_API_URL=$(PREFECT_API) $(BIN)/prefect work-pool inspect mnist-pool >/dev/null 2>&1 \
		|| PREFECT_API_URL=$(PREFECT_API) $(BIN)/prefect work-pool create mnist-pool --type process
	PREFECT_API_URL=$(PREFECT_API) PWD=$(CURDIR) $(BIN)/prefect --no-prompt deploy --all

# The automation that calls WEBHOOK (a URL) when a run of mnist-retrain fails or crashes.
alerts: $(STAMP)
	PREFECT_API_URL=$(PREFECT_API) $(BIN)/mnist-flow alerts --webhook "$(WEBHOOK)"

worker: $(STAMP)
	PREFECT_API_URL=$(PREFECT_API) $(BIN)/prefect worker start --pool mnist-pool --type process

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
