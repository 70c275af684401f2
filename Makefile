# Two commands set everything up: `make start` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8866
LAB_PORT ?= 8888

.PHONY: install start lab test site site-html check-export check-clean pytest nbtest nbtest-online notebooks docs webapp browser bench dist clean

# Re-installs only when the pins change (the stamp is newer than both pin files otherwise). --no-compile: Python
# compiles a module when it is first imported; compiling all 19,000 files up front costs about 45 s of CPU.
$(STAMP): pyproject.toml requirements-lock.txt
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	@echo "Installing the pinned environment into $(VENV) (about 3 minutes the first time)..."
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile -c requirements-lock.txt -e ".[course,dev]"
	@touch $(STAMP)

install: $(STAMP)

# Serves every app in nbs/apps with the settings in nbs/apps/voila.json (localhost, sources stripped, one preheated
# kernel per notebook so a page shows at once, the upload limit). The pool fills in the first minute or so.
start: install
	@echo "Voila apps gallery: http://$(HOST):$(PORT)/voila/render/index.ipynb  (every app: http://$(HOST):$(PORT)/ ; Ctrl-C to stop)"
	cd nbs/apps && exec ../../$(BIN)/voila --no-browser --Voila.ip=$(HOST) --port=$(PORT) .

lab: install
	@echo "JupyterLab on the lessons: http://$(HOST):$(LAB_PORT)/lab"
	$(BIN)/jupyter lab --no-browser --ip=$(HOST) --port=$(LAB_PORT) --notebook-dir=nbs

# Fails on the first problem: stale package, unclean notebooks, failing notebooks, failing tests (the site's included).
# Each step runs in turn and its seconds go to a table printed at the end, also when a step fails.
TEST_STEPS := install check-export check-clean notebooks site-html webapp pytest
STEP_TIMES := test-output/make-test-seconds.txt
test:
	@mkdir -p test-output && : > $(STEP_TIMES); t0=$$(date +%s); \
	trap 'echo; echo "make test, seconds per step:"; cat $(STEP_TIMES); \
	      printf "%-14s %6d\n" total $$(( $$(date +%s) - t0 ))' EXIT; \
	for step in $(TEST_STEPS); do \
	  start=$$(date +%s); status=0; \
	  $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) $$step || status=$$?; \
	  printf "%-14s %6d" $$step $$(( $$(date +%s) - start )) >> $(STEP_TIMES); \
	  if [ $$status != 0 ]; then echo "  FAILED" >> $(STEP_TIMES); exit $$status; fi; \
	  echo >> $(STEP_TIMES); \
	done

check-export: install
	@tmp=$$(mktemp -d) && cp -r htc_dl $$tmp/before && $(BIN)/nbdev-export && \
	if ! diff -r -x __pycache__ $$tmp/before htc_dl; then \
	  echo "FAIL: nbdev-export changed htc_dl/ (above). Edit the notebooks, run nbdev-export, commit htc_dl/."; \
	  rm -rf $$tmp; exit 1; fi; rm -rf $$tmp; echo "nbdev-export: htc_dl/ matches the notebooks."

check-clean: install
	@tmp=$$(mktemp -d) && cp -r nbs $$tmp/before && $(BIN)/nbdev-clean && \
	if ! diff -r -x .ipynb_checkpoints -x __pycache__ $$tmp/before nbs > /dev/null; then \
	  diff -rq -x .ipynb_checkpoints -x __pycache__ $$tmp/before nbs || true; \
	  echo "FAIL: notebooks were not clean (listed above). Run nbdev-clean and commit."; \
	  rm -rf $$tmp; exit 1; fi; rm -rf $$tmp; echo "nbdev-clean: notebooks are clean."

# The static web app (webapp/dist): onnxruntime-web from the lock file, the page, and the model exported by htc_dl.bundle.
# With MODEL=FOLDER VALID=FOLDER [OUT=FOLDER]: your own classifier's page instead (htc_dl.own_webapp), into OUT.
webapp: install
	cd webapp && npm ci --no-audit --no-fund
ifdef MODEL
	$(BIN)/python -m htc_dl.own_webapp --model "$(MODEL)" $(if $(VALID),--valid "$(VALID)") --out "$(or $(OUT),site/app)"
else
	$(BIN)/python -c "from htc_dl.bundle import build_webapp; print(build_webapp())"
endif

# Debian's chromium for the browser tests (driven by the PyPI playwright package; never `playwright install`).
browser:
	@test -x /usr/bin/chromium || { echo "Installing Debian's chromium for the browser tests..."; \
	  apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; }

# Two pytest workers (the cores), each taking whole test files: one process alone keeps one core busy.
# Each test's seconds go to test-output/pytest.xml.
pytest: install browser
	$(BIN)/python -m pytest -q -ra --durations=15 -n 2 --dist loadfile --junitxml=test-output/pytest.xml tests/

# Every notebook runs once per mode, on a copy of nbs/ whose executed notebooks (outputs saved) the site is built from.
# scripts/run_notebooks.py runs them two at a time (the cores), the longest first by the seconds of an earlier run
# (NOTEBOOK_SECONDS), so no long lesson starts last and finishes alone; `make test` runs both passes in one schedule.
# Each lesson gets a new process, like a learner's fresh kernel; the short support and app notebooks share workers.
# Each kernel gets one OpenMP/MKL thread: two kernels on 2 cores, each with two threads, spin-wait against each other.
EXECUTED := build/executed
NOTEBOOK_SECONDS := scripts/notebook_seconds.json
STREAM_THREADS := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
RUN_NOTEBOOKS := env $(STREAM_THREADS) $(BIN)/python scripts/run_notebooks.py --slots 2 --fresh lessons \
  --expected $(NOTEBOOK_SECONDS) --record test-output/notebook-seconds.json
fresh_copy = rm -rf $(EXECUTED)/$(1) && mkdir -p $(EXECUTED)/$(1) && cp -r nbs $(EXECUTED)/$(1)/

# The offline pass runs every notebook with tests/online/mode_guard on its path, which records each read of a mode or
# folder variable and each network connection, per notebook, in MODE_RECORD. The notebooks listed in SAME_BOTH_MODES
# run offline only: tests/test_ci_speed.py checks that they made none.
SAME_BOTH_MODES := tests/online/same_in_both_modes.txt
OFFLINE_ONLY_PATHS := $(shell sed -e 's/\#.*//' $(SAME_BOTH_MODES) 2>/dev/null)
OFFLINE_ONLY := $(basename $(notdir $(OFFLINE_ONLY_PATHS)))
MODE_RECORD := $(EXECUTED)/offline/mode-reads.jsonl
OFFLINE_ENV := HTC_DL_SMALL=1 HTC_DL_OFFLINE=1 PYTHONPATH=$(CURDIR)/tests/online/mode_guard \
  HTC_DL_GUARD_LOG=$(CURDIR)/$(MODE_RECORD)
OFFLINE_PASS := --pass offline $(EXECUTED)/offline/nbs --env offline '$(OFFLINE_ENV)'

# The online pass (all but OFFLINE_ONLY) runs against a mirror on 127.0.0.1 that serves each data set in its real
# layout at its real file counts (tests/online/: drawn pictures, real names), with its own data and models folders;
# the mirror is built beside the first notebooks. With MIRROR=0 it runs against the real data sets (fastai's URLs),
# as the Pages workflow does.
MIRROR ?= 1
ONLINE_PORT ?= 8765
ONLINE := test-output/online
ONLINE_ENV := HTC_DL_SMALL=1 HTC_DL_OFFLINE=0
ONLINE_PASS = --pass online $(EXECUTED)/online/nbs --env online '$(ONLINE_ENV)' --skip online '$(OFFLINE_ONLY)'
ifeq ($(MIRROR),1)
ONLINE_ENV += HTC_DL_URL_BASE=http://127.0.0.1:$(ONLINE_PORT)/ \
  HTC_DL_DATA=$(CURDIR)/$(ONLINE)-data HTC_DL_MODELS=$(CURDIR)/$(ONLINE)-models
MIRROR_PID := $(ONLINE)-server.pid
ONLINE_PASS += --first online '$(BIN)/python tests/online/serve.py --build $(ONLINE)-archives \
  --port $(ONLINE_PORT) --background --pidfile $(MIRROR_PID)'
STOP_MIRROR := rm -f $(MIRROR_PID); trap 'test ! -f $(MIRROR_PID) || kill $$(cat $(MIRROR_PID))' EXIT;
endif

nbtest: install
	@echo "Executing every notebook in nbs/ in small offline mode (executed copies in $(EXECUTED)/offline)..."
	$(call fresh_copy,offline)
	$(RUN_NOTEBOOKS) $(OFFLINE_PASS)

nbtest-online: install
	@echo "Executing the notebooks in nbs/ in small mode against the simulated online mirror (executed copies"\
	  "in $(EXECUTED)/online); offline only, the same in both modes: $(OFFLINE_ONLY)"
	$(call fresh_copy,online)
	$(STOP_MIRROR) $(RUN_NOTEBOOKS) $(ONLINE_PASS)

# Both passes in one schedule, as `make test` runs them. The site is built from the online copies: the OFFLINE_ONLY
# notebooks' executed copies go there from the offline pass, and REUSED_OFFLINE tells site-html not to run them again.
REUSED_OFFLINE := $(EXECUTED)/online/offline-only-copied
notebooks: install
	@echo "Executing the notebooks in nbs/ in small mode, offline and against the simulated online mirror"\
	  "(executed copies in $(EXECUTED)); offline only, the same in both modes: $(OFFLINE_ONLY)"
	$(call fresh_copy,offline) && $(call fresh_copy,online)
	$(STOP_MIRROR) $(RUN_NOTEBOOKS) $(OFFLINE_PASS) $(ONLINE_PASS)
	for nb in $(OFFLINE_ONLY_PATHS); do cp $(EXECUTED)/offline/$$nb $(EXECUTED)/online/$$nb; done
	touch $(REUSED_OFFLINE)

space := $(eval) $(eval)
names_re = ^($(subst $(space),|,$(strip $(1))))\.ipynb$$

# The published site and the branch `executed` (the Pages workflow runs `make site MIRROR=0`): the online pass's
# executed notebooks, with the OFFLINE_ONLY ones executed beside them, built into build/site. `make test` runs the
# same two steps against the mirror. docs/publish_executed.py then copies the notebooks for the branch.
site: nbtest-online site-html
site-html: install
	@if [ -f $(REUSED_OFFLINE) ]; then echo "$(OFFLINE_ONLY): executed in the offline pass"; else \
	  env $(STREAM_THREADS) HTC_DL_SMALL=1 HTC_DL_OFFLINE=1 $(BIN)/nbdev-test $(EXECUTED)/online/nbs --save \
	    --timing --n-workers 1 --file-re '$(call names_re,$(OFFLINE_ONLY))'; fi
	$(BIN)/python docs/build_site.py $(EXECUTED)/online/nbs build/site

# The course site (Jupyter Book 1, offline) from the executed notebooks: build/site/html/index.html.
docs: install
	@test -d $(EXECUTED)/offline/nbs || $(MAKE) nbtest
	$(BIN)/python docs/build_site.py $(EXECUTED)/offline/nbs build/site

bench: install
	$(BIN)/python bench/run_all.py

dist: install
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) dist build *.egg-info test-output
