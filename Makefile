# Two commands: `make run` and `make test`. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests mostly wait on Asterisk; three workers, each with its own Asterisk, fit two cores.
TEST_WORKERS ?= 3
PID := var/hotline.pid
LOG := var/hotline.log
PANEL_URL = $(shell $(BIN)/python -c "from ivr.settings import load_settings as l; p=l().panel; print(f'http://{p.host}:{p.port}/')")

.PHONY: install run stop test lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install:
	scripts/install-system-deps
	$(MAKE) --no-print-directory $(STAMP)

## Asterisk + the service + the panel on SQLite with demo data, in the background.
# Development: the shipped secrets of config/hotline.toml are accepted and demo data allowed
# (`hotline serve` refuses both in production, the default).
run: export HOTLINE_ENVIRONMENT = development
run: install
	@mkdir -p var
	$(BIN)/hotline db upgrade
	$(BIN)/hotline demo
	$(BIN)/hotline asterisk up
	@if [ -f $(PID) ] && kill -0 $$(cat $(PID)) 2>/dev/null; then kill $$(cat $(PID)); sleep 1; fi
	@nohup $(BIN)/hotline serve >> $(LOG) 2>&1 & echo $$! > $(PID)
	@for i in $$(seq 1 60); do curl -sf $(PANEL_URL)healthz >/dev/null 2>&1 && break; sleep 0.5; done
	@curl -sf $(PANEL_URL)healthz >/dev/null || (echo "the service did not start; see $(LOG)"; exit 1)
	@echo
	@echo "Panel:      $(PANEL_URL)   (demo logins in the README, password hotline-demo)"
	@$(BIN)/hotline status
	@echo "Try a call: $(BIN)/hotline call simulate --dtmf 2"
	@echo "Stop:       make stop     (log: $(LOG))"

stop:
	@if [ -f $(PID) ]; then kill $$(cat $(PID)) 2>/dev/null || true; rm -f $(PID); fi
	-$(BIN)/hotline asterisk down

## The whole suite: unit, real Asterisk 22, SQLite and PostgreSQL.
test: install
	$(BIN)/ruff check ivr agi web tests bench
	$(BIN)/mypy ivr agi web bench
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --durations=15

lint: install
	$(BIN)/ruff check ivr agi web tests bench
	$(BIN)/mypy ivr agi web bench

bench: install
	$(BIN)/python -m bench
	$(BIN)/python -m bench ami
	$(BIN)/python -m bench panel
	$(BIN)/python -m bench calls --calls 1000
