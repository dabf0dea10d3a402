# The sentiment service: train, export, archive, serve and test. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The data directory: model.data.DATA_DIR (../shared/data) unless DATA_DIR=... is given.
ifdef DATA_DIR
export SENTIMENT_DATA_DIR := $(abspath $(DATA_DIR))
endif
ARTIFACTS := model/artifacts
# sentiment.mar is version 1.0, the archive serve, batch and the tests use; `make archive VERSION=2.0` writes
# sentiment_2.0.mar beside it (serving.archive.archive_name: the same rule), so the version is in the target's name
BASE_VERSION := 1.0
VERSION ?= $(BASE_VERSION)
archive_file = model_store/sentiment$(if $(filter $(BASE_VERSION),$(1)),,_$(1)).mar
MAR := $(call archive_file,$(BASE_VERSION))
# the Makefile too: it says which version sentiment.mar carries
MAR_INPUTS := $(ARTIFACTS)/sentiment.pt $(ARTIFACTS)/config.json $(ARTIFACTS)/baseline.json $(wildcard $(ARTIFACTS)/tokenizer/*) \
	model/__init__.py model/config.py model/text.py model/infer.py $(wildcard handler/*.py) model-config.yaml \
	serving/archive.py Makefile

.PHONY: help serve stop test unit integration lint train export archive clean java bench bench-frontier wrk

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt # what serving and training need
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt requirements-batch.txt bench/requirements.txt $(VENV)/.installed # tests, lint, Spark, benchmarks
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

java: # Spark 4 runs on Java 17 or later only; "1.8.0" reads as major version 1
	@command -v java >/dev/null || { echo "TorchServe and Spark need Java 17: install it (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	@java -version 2>&1 | awk -F'"' '/version/ { split($$2, v, "."); if (v[1] < 17) { print "TorchServe and Spark need Java 17 or later, found " $$2 " (Debian: apt-get install openjdk-17-jre-headless)"; exit 1 } }'

train: $(VENV)/.installed ## train on IMDB ([DATA_DIR=../shared/data]); writes model/artifacts, metrics.json, training_curve.png
	$(PY) -m model.train

.PHONY: baseline
baseline: $(ARTIFACTS)/baseline.json ## the validation split's calibration and drift baseline (make train writes them too)

# calibration.json is written with it; an archive ships both for evaluation/
$(ARTIFACTS)/baseline.json: $(ARTIFACTS)/sentiment.pt model/baseline.py model/calibration.py | $(VENV)/.installed
	$(PY) -m model.baseline

export: $(VENV)/.installed ## trace the trained model to TorchScript (model/artifacts/sentiment.pt)
	$(PY) -m model.export

archive: $(call archive_file,$(VERSION)) ## build model_store/sentiment.mar (1.0); VERSION=2.0: sentiment_2.0.mar beside it

$(MAR): $(MAR_INPUTS) | $(VENV)/.installed
	$(PY) -m serving.archive --version $(BASE_VERSION)

model_store/sentiment_%.mar: $(MAR_INPUTS) | $(VENV)/.installed
	$(PY) -m serving.archive --version $*

serve: $(VENV)/.installed java $(MAR) ## start TorchServe on 127.0.0.1:8080-8082 with the model; returns when it answers
	$(PY) -m serving.server start

stop: ## stop the TorchServe started by `make serve`
	@test ! -x $(PY) || $(PY) -m serving.server stop

test: $(VENV)/.dev-installed java $(MAR) ## run every test: unit, then integration against real TorchServe instances
	$(PY) -m pytest tests

unit: $(VENV)/.dev-installed $(MAR) ## run the unit tests only (no server)
	$(PY) -m pytest tests/unit

integration: $(VENV)/.dev-installed java $(MAR) ## run the integration tests only (real TorchServe instances on free ports)
	$(PY) -m pytest tests/integration

lint: $(VENV)/.dev-installed ## ruff check and format check
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

.PHONY: soak
soak: $(VENV)/.dev-installed java wrk $(MAR) ## 60 s at concurrency 32 against the shipped config on loopback -> bench/results/soak.json
	$(PY) -m bench.soak --seconds 60 --connections 32 --out bench/results/soak.json

wrk: # Debian's wrk, the load generator of bench and soak
	@command -v wrk >/dev/null || { test "$$(id -u)" = 0 || { echo "the load tests need wrk: sudo apt-get install -y wrk"; exit 1; }; \
		apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

bench: $(VENV)/.dev-installed java wrk ## benchmark (minutes): ceiling, TorchServe vs FastAPI peer, cold start -> bench/results/
	$(PY) -m bench.run

.PHONY: bench-capture
bench-capture: $(VENV)/.dev-installed java wrk ## capture's cost: c=64 req/s with capture on vs off (make bench runs it too) -> bench/results/capture.json
	$(PY) -m bench.capture_cost

bench-frontier: $(VENV)/.dev-installed java wrk ## measure TorchServe's maxBatchDelay x workers x threads frontier -> bench/results/frontier.json
	$(PY) -m bench.frontier

.PHONY: evaluate
FEEDBACK ?= feedback
WINDOW ?= 1d
EVALUATE_ARGS ?=
evaluate: $(VENV)/.dev-installed java ## evaluate captures/ against labels: [FEEDBACK=feedback/] [WINDOW=1d] -> evaluation-runs/latest; exit 3: a critical alert
	$(PY) -m evaluation run --captures captures --feedback $(FEEDBACK) --window $(WINDOW) $(EVALUATE_ARGS)

.PHONY: evaluation-demo
evaluation-demo: $(VENV)/.dev-installed java $(MAR) ## the pattern end to end (minutes): traffic shifts, drift, alert, gated retrain, recovery -> evaluation-demo/
	$(PY) -m evaluation.demo --out evaluation-demo

.PHONY: retrain rollback
RETRAIN_ARGS ?=
retrain: $(VENV)/.dev-installed ## train a candidate on labeled captured traffic; promote it (make serve's server) only if it wins -> retrain-runs/<time>/decision.json
	$(PY) -m evaluation retrain --captures captures --feedback $(FEEDBACK) --promote $(RETRAIN_ARGS)

rollback: $(VENV)/.installed ## make the previous version the default again and unregister the current one
	$(PY) -m serving.client rollback sentiment

.PHONY: batch bench-batch
INPUT ?=
OUTPUT ?=
BATCH_ARGS ?=

$(VENV)/.spark-classes: $(VENV)/.dev-installed $(wildcard batch/*.py) | $(MAR) # the local JVM's class-data-sharing archive (batch/cds.py): the classes a run of the job loads
	$(PY) -m batch.cds --mar $(MAR)
	@touch $@

batch: $(VENV)/.dev-installed java $(MAR) $(VENV)/.spark-classes ## score a dataset on Spark: make batch INPUT=reviews.jsonl.gz OUTPUT=out/ [BATCH_ARGS=...]
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make batch INPUT=<jsonl[.gz]|csv|parquet> OUTPUT=<dir> [BATCH_ARGS='--key-column id --jsonl']"; exit 2; }
	$(PY) -m batch --input $(INPUT) --output $(OUTPUT) --mar $(MAR) $(BATCH_ARGS)

bench-batch: $(VENV)/.dev-installed java $(MAR) $(VENV)/.spark-classes ## Spark batch job on 50,000 reviews vs the in-process ceiling -> bench/results/batch.json
	$(PY) -m bench.batch_job --mar $(MAR)

clean: ## remove the archive, logs and caches (keeps .venv and the trained artifacts)
	rm -rf $(MAR) model_store/sentiment_*.mar logs tmp key_file.json .pytest_cache .ruff_cache
