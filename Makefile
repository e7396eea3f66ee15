# The one entry point of the course. Every target works on a fresh clone: the environment in
# .venv is created from requirements.lock when missing or stale, and left alone when up to date.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KERNEL := dl-course
PORT   ?= 8888
LAB_ARGS ?=
# JupyterLab refuses to run as root unless told (containers, CI)
ROOT_ARG := $(if $(filter 0,$(shell id -u)),--ServerApp.allow_root=True)
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
# test runs JOBS workers, each with kernels of its own: one BLAS thread per process avoids
# oversubscribing the cores (a loaded 2-core machine runs small models 10x slower otherwise).
# Assignments to release/grade: every chapter in solutions/ unless given, e.g. A=01_tensors
A      ?= $(notdir $(patsubst %/,%,$(wildcard solutions/*/)))
# `make autograde JOBS=N` grades N submissions at a time. JOBS above is the number of pytest
# workers, so autograde uses 1 unless JOBS is given on the command line (or GRADE_JOBS=N).
# N > 1 and GRADE_BACKEND=dask need COURSE_GRADEBOOK_URL=postgresql+psycopg2://...; a running
# Dask scheduler is SCHEDULER=tcp://host:8786 (without it: a LocalCluster on this machine).
GRADE_JOBS    ?= $(if $(filter command line,$(origin JOBS)),$(JOBS),1)
GRADE_BACKEND ?= local
SCHEDULER     ?=

export PYDEVD_DISABLE_FILE_VALIDATION := 1
# nbgrader runs `alembic` from PATH: the environment's bin comes first
export PATH := $(abspath $(BIN)):$(PATH)
export JUPYTER_PLATFORM_DIRS := 1

.DEFAULT_GOAL := help
.PHONY: help system-deps install lab test test-fast release autograde feedback export student-bundle bench bench-grading sync lock lint clean distclean

help:  ## list the targets
	@echo "Deep-learning course -- make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo "Variables: A=<assignment ids> (release/autograde/feedback), PORT=$(PORT), JOBS=$(JOBS)"
	@echo "  autograde: JOBS=N workers (default 1), GRADE_BACKEND=local|dask, SCHEDULER=tcp://..."

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.lock
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python 3 (DL course)" >/dev/null
	@touch $(STAMP)
	@echo "environment ready in $(VENV) (kernel '$(KERNEL)')"

install: $(STAMP)  ## create or update .venv from requirements.lock (only when needed)

# Debian packages the tests need: a browser for tests/test_browser.py, a PostgreSQL server for
# parallel grading. Installed only when missing (needs root or sudo); CI calls this first.
SYSTEM_DEPS := chromium postgresql
system-deps:  ## apt-get install the browser and database the tests need (when missing)
	@missing=$$(for p in $(SYSTEM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing $$missing"; \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) sh -c "apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing"; \
	else echo "system packages present: $(SYSTEM_DEPS)"; fi

lab: $(STAMP)  ## start JupyterLab at the repository root with the student notebooks open
	$(BIN)/jupyter lab --ServerApp.root_dir=. --ServerApp.port=$(PORT) \
		--LabApp.default_url=/lab/tree/notebooks $(ROOT_ARG) $(LAB_ARGS)

test: $(STAMP) system-deps  ## run everything: helpers, environment, contract, release, nbval, autograde round trip
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS) --dist loadscope --durations=25 \
		--cov=helpers --cov-report=term-missing:skip-covered --cov-fail-under=90 \
		--nbval-lax tests solutions

test-fast: $(STAMP)  ## only the quick tests (no notebook execution, no nbgrader runs)
	$(PY) -m pytest -m "not slow" tests

release: $(STAMP)  ## regenerate the student notebooks in notebooks/ from solutions/
	@for a in $(A); do $(BIN)/nbgrader generate_assignment $$a --force || exit 1; done

autograde: $(STAMP)  ## grade autograde/submitted/<student>/<id>/ safely; report in autograde/reports/
	$(PY) -m autograde.grade $(A) --jobs $(GRADE_JOBS) --backend $(GRADE_BACKEND) \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER))

feedback: $(STAMP)  ## write HTML feedback to autograde/feedback/ (hidden tests left out)
	@for a in $(A); do $(BIN)/nbgrader generate_feedback $$a || exit 1; done

export: $(STAMP)  ## export all grades to autograde/grades.csv
	$(BIN)/nbgrader export --to autograde/grades.csv

BUNDLE ?= dist/dl-course-student.zip
student-bundle:  ## zip for students: notebooks, helpers, environment files, README (BUNDLE=path)
	$(PYTHON) tools/student_bundle.py --out $(BUNDLE)

bench: $(STAMP)  ## time each solution notebook: plain run, autograde run, quality figure
	$(PY) -m autograde.bench $(A)

bench-grading: $(STAMP) system-deps  ## s per full-course submission: plain vs graded, 1 vs JOBS workers
	$(PY) -m autograde.bench_grading $(A) --jobs $(if $(filter command line,$(origin JOBS)),$(JOBS),2)

sync: $(STAMP)  ## sync each solution notebook with its jupytext twin (the newer one wins)
	$(BIN)/jupytext --sync solutions/*/*.ipynb

lock: $(STAMP)  ## re-resolve requirements.in into requirements.lock and environment.yml
	rm -rf /tmp/dl-course-lock && $(PYTHON) -m venv /tmp/dl-course-lock
	/tmp/dl-course-lock/bin/pip install -q -r requirements.in
	/tmp/dl-course-lock/bin/python tools/lock.py

lint: $(STAMP)  ## ruff over helpers, autograde and tests
	$(BIN)/ruff check helpers autograde tests tools

clean:  ## remove grading output, caches and artifacts (keeps .venv)
	rm -rf autograde/submitted autograde/autograded autograde/feedback autograde/solution \
		autograde/downloaded autograde/reports dist autograde/gradebook.db autograde/grades.csv artifacts .pytest_cache .coverage htmlcov
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

distclean: clean  ## clean, and remove .venv too
	rm -rf $(VENV)
