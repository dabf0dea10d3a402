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
# sentiment_2.0.mar beside it (serving.build.archive.archive_name: the same rule), so the version is in the target's name
BASE_VERSION := 1.0
VERSION ?= $(BASE_VERSION)
archive_file = model_store/sentiment$(if $(filter $(BASE_VERSION),$(1)),,_$(1)).mar
MAR := $(call archive_file,$(BASE_VERSION))
# the Makefile too: it says which version sentiment.mar carries
MAR_INPUTS := $(ARTIFACTS)/sentiment.pt $(ARTIFACTS)/config.json $(ARTIFACTS)/baseline.json $(ARTIFACTS)/calibration.json $(wildcard $(ARTIFACTS)/tokenizer/*) \
	model/__init__.py model/config.py model/text.py model/logit.py model/infer.py $(wildcard handler/*.py) model-config.yaml \
	serving/build/archive.py Makefile
# The phase-2 model of the two-phase cascade, served beside sentiment by the same handler
BIGRAM := model/artifacts_bigram
BIGRAM_MAR := model_store/sentiment-bigram.mar
BIGRAM_INPUTS := $(BIGRAM)/bigram.pt $(BIGRAM)/config.json $(BIGRAM)/baseline.json $(BIGRAM)/calibration.json $(ARTIFACTS)/tokenizer/tokenizer.json \
	model/__init__.py model/config.py model/text.py model/logit.py model/infer.py model/bigram_net.py $(wildcard handler/*.py) \
	model-config.yaml serving/build/archive.py
# The device bundle (edge/): the int8 ONNX model, the tokenizer, the calibrated settings; not committed
EDGE_BUNDLE := dist/edge/settings.json
EDGE_INPUTS := $(ARTIFACTS)/weights.pt $(ARTIFACTS)/sentiment.pt $(ARTIFACTS)/config.json \
	$(ARTIFACTS)/tokenizer/tokenizer.json $(ARTIFACTS)/device.json $(ARTIFACTS)/calibration.json model/net.py model/export.py model/onnx_export.py \
	serving/build/bundle.py model-config.yaml

.PHONY: help serve stop test unit integration lint train export archive clean java bench bench-frontier wrk
.PHONY: train-bigram archive-bigram edge calibrate two-phase-report web web-stop web-deps chromium web-report

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# Each long step says what it is doing first: pip's own lines (and download bars) follow, a minute or two on a
# fresh clone, seconds when everything is there already.
$(VENV)/.installed: requirements.txt # what serving and training need
	@test -x $(PY) || { echo "==> creating the virtual environment $(VENV)/"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing the serving packages into $(VENV)/ (requirements.txt: torch, TorchServe, ...)"
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -r requirements.txt
	@touch $@

$(VENV)/.batch-installed: requirements-batch.txt $(VENV)/.installed # the batch job's own: pyspark, pandas, pyarrow
	@echo "==> installing the batch job's packages into $(VENV)/ (requirements-batch.txt: pyspark, pandas, pyarrow)"
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -r requirements-batch.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt requirements-batch.txt bench/requirements.txt $(VENV)/.installed # tests, lint, Spark, benchmarks
	@echo "==> installing the development packages into $(VENV)/ (requirements-dev.txt: tests, lint, Spark, benchmarks)"
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -r requirements-dev.txt
	@touch $@

java: # Spark 4 runs on Java 17 or later only; "1.8.0" reads as major version 1
	@command -v java >/dev/null || { echo "TorchServe and Spark need Java 17: install it (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	@java -version 2>&1 | awk -F'"' '/version/ { split($$2, v, "."); if (v[1] < 17) { print "TorchServe and Spark need Java 17 or later, found " $$2 " (Debian: apt-get install openjdk-17-jre-headless)"; exit 1 } }'

train: $(VENV)/.installed ## train on IMDB reviews and SST-2 phrases ([DATA_DIR=../shared/data]); writes model/artifacts, metrics.json, training_curve.png
	$(PY) -m model.train

.PHONY: baseline
baseline: $(VENV)/.installed ## refit the validation split's calibration and drift baseline (make train writes them; needs the data) -> model/artifacts/{baseline,calibration}.json, committed
	$(PY) -m model.baseline

export: $(VENV)/.installed ## trace the trained model to TorchScript (model/artifacts/sentiment.pt)
	$(PY) -m model.export

archive: $(call archive_file,$(VERSION)) ## build model_store/sentiment.mar (1.0); VERSION=2.0: sentiment_2.0.mar beside it

train-bigram: $(VENV)/.installed ## train and trace the phase-2 uni+bigram model on both registers, with its baseline and calibration (model/artifacts_bigram; about a minute)
	$(PY) -m model.train_bigram

archive-bigram: $(BIGRAM_MAR) ## build model_store/sentiment-bigram.mar, the phase-2 model's archive

$(BIGRAM_MAR): $(BIGRAM_INPUTS) | $(VENV)/.installed
	@echo "==> building $@ (the phase-2 model's archive)"
	$(PY) -m serving.build.archive --name sentiment-bigram

edge: $(EDGE_BUNDLE) ## build the device bundle in dist/edge/: int8 ONNX model, tokenizer, calibrated settings

calibrate: $(VENV)/.installed ## choose the device's threshold again on the validation split (after training; needs the data) -> model/artifacts/device.json
	$(PY) -m serving.build.bundle --calibrate

$(EDGE_BUNDLE): $(EDGE_INPUTS) | $(VENV)/.installed
	@echo "==> building the device bundle dist/edge/ (int8 ONNX export: about 10 s)"
	$(PY) -m serving.build.bundle

# The phase-1 page (edge/web/): npm packages pinned in the committed package-lock.json, never committed themselves
WEB_DEPS := edge/web/node_modules/.package-lock.json
WEB_PORT ?= 8095

$(WEB_DEPS): edge/web/package.json edge/web/package-lock.json
	@command -v npm >/dev/null || { echo "the page needs node and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	cd edge/web && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

web-deps: $(WEB_DEPS) # the page's npm packages (onnxruntime-web, the tokenizers WebAssembly build)

web: $(WEB_DEPS) $(EDGE_BUNDLE) ## serve the phase-1 page on 127.0.0.1:8095 [WEB_PORT=...] in the background; returns when it answers; phase 2 on make serve's TorchServe
	$(PY) -m serving.web.dev_server start --port $(WEB_PORT)

web-stop: ## stop the page server started by `make web` (by its recorded pid)
	@test ! -x $(PY) || $(PY) -m serving.web.dev_server stop

web-report: $(VENV)/.dev-installed java chromium $(WEB_DEPS) $(MAR) $(BIGRAM_MAR) $(EDGE_BUNDLE) ## the page in headless Chromium: bytes, first prediction, latency -> bench/results/browser.json, docs/web-*.png
	WEB_RESULTS=bench/results WEB_SCREENSHOTS=docs $(PY) -m pytest tests/integration/test_browser.py -q

chromium: # Debian's headless Chromium, the browser of the page's tests
	$(call apt_install,chromium,chromium,the browser tests)

two-phase-report: $(VENV)/.dev-installed java $(EDGE_BUNDLE) $(BIGRAM_MAR) ## measure the cascade -> bench/results/two_phase*
	$(PY) -m bench.two_phase

$(MAR): $(MAR_INPUTS) | $(VENV)/.installed
	@echo "==> building $@ (version $(BASE_VERSION))"
	$(PY) -m serving.build.archive --version $(BASE_VERSION)

model_store/sentiment_%.mar: $(MAR_INPUTS) | $(VENV)/.installed
	@echo "==> building $@ (version $*)"
	$(PY) -m serving.build.archive --version $*

serve: $(VENV)/.installed java $(MAR) $(BIGRAM_MAR) $(EDGE_BUNDLE) ## start TorchServe on 127.0.0.1 (8080-8082, gRPC 7070-7071) with both models; returns when they answer
	$(PY) -m serving.run.server start

stop: ## stop the TorchServe started by `make serve`
	@test ! -x $(PY) || $(PY) -m serving.run.server stop

test: $(VENV)/.dev-installed java nginx chromium $(WEB_DEPS) $(MAR) $(BIGRAM_MAR) $(EDGE_BUNDLE) ## run every test: unit, then integration (real TorchServe, nginx, Chromium), then batch and evaluation (Spark)
	$(PY) -m pytest tests

unit: $(VENV)/.dev-installed $(MAR) $(BIGRAM_MAR) $(EDGE_BUNDLE) ## run the unit tests only (no server)
	$(PY) -m pytest tests/unit

integration: $(VENV)/.dev-installed java nginx chromium $(WEB_DEPS) $(MAR) $(BIGRAM_MAR) $(EDGE_BUNDLE) ## run the integration tests only (real TorchServe instances on free ports)
	$(PY) -m pytest tests/integration

lint: $(VENV)/.dev-installed ## ruff check and format check
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

.PHONY: soak
soak: $(VENV)/.dev-installed java wrk $(MAR) ## 60 s at concurrency 32 against the shipped config on loopback -> bench/results/soak.json
	$(PY) -m bench.soak --seconds 60 --connections 32 --out bench/results/soak.json

# Debian packages some targets need, installed when missing: $(call apt_install,command,package,who needs it)
define apt_install
@command -v $(1) >/dev/null || { test "$$(id -u)" = 0 || { echo "$(3) need $(1): sudo apt-get install -y $(2)"; exit 1; }; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; }
endef

.PHONY: nginx fleet fleet-stop bench-fleet
wrk: # Debian's wrk, the load generator of bench and soak
	$(call apt_install,wrk,wrk,the load tests)

nginx: # Debian's nginx, the fleet's proxy
	$(call apt_install,nginx,nginx-light,the fleet and its tests)

REPLICAS ?= 3
FLEET_PORT ?= # the proxy's loopback port; empty: a free one, printed and in `serving.fleet status`
fleet: $(VENV)/.installed java nginx $(MAR) ## REPLICAS TorchServe replicas (default 3) behind nginx on loopback, supervised; [FLEET_PORT=port, default a free one]; returns when it answers
	$(PY) -m serving.fleet start --replicas $(REPLICAS)$(if $(strip $(FLEET_PORT)), --port $(strip $(FLEET_PORT)))

bench-fleet: $(VENV)/.dev-installed java wrk nginx $(MAR) ## one replica direct vs behind nginx, a fleet of 3, the capacity model -> bench/results/fleet.json
	$(PY) -m bench.fleet

fleet-stop: ## stop the fleet started by `make fleet`
	@test ! -f fleet/fleet.json || $(PY) -m serving.fleet stop

bench: $(VENV)/.dev-installed java wrk ## benchmark (about 13 min): ceiling, TorchServe vs the FastAPI and LitServe peers, cold start -> bench/results/
	$(PY) -m bench.run

.PHONY: bench-capture
bench-capture: $(VENV)/.dev-installed java wrk ## capture's cost: c=64 req/s with capture on vs off (make bench runs it too) -> bench/results/capture.json
	$(PY) -m bench.capture_cost

.PHONY: bench-frontend
FRONTEND_ARGS ?= # e.g. FRONTEND_ARGS="--variants shipped,wire,wire+serial-gc --rounds 5"
bench-frontend: $(VENV)/.dev-installed java wrk ## CPU per request around the model at c=64: shipped vs the buffered worker protocol and JVM/Netty/metrics candidates (about 18 min) -> bench/results/frontend.json
	$(PY) -m bench.frontend $(FRONTEND_ARGS)

bench-frontier: $(VENV)/.dev-installed java wrk ## measure TorchServe's maxBatchDelay x workers x threads frontier -> bench/results/frontier.json
	$(PY) -m bench.frontier

.PHONY: evaluate
FEEDBACK ?= feedback
WINDOW ?= 1d
EVALUATE_ARGS ?=
EVALUATE_STATUS ?= # deploy/evaluate's file for the run's exit status: make itself reports any failure as 2
evaluate: $(VENV)/.dev-installed java ## evaluate every model's captures against labels: [FEEDBACK=feedback/] [WINDOW=1d] -> evaluation-runs/latest; deploy/evaluate exits 3 on a critical alert
	@$(PY) -m evaluation run --captures captures --feedback $(FEEDBACK) --window $(WINDOW) $(EVALUATE_ARGS); \
	status=$$?; $(if $(EVALUATE_STATUS),echo $$status > $(EVALUATE_STATUS);) exit $$status

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
BENCH_ARGS ?= # e.g. BENCH_ARGS="--variants tuned,plain,no-jit,no-preload --rounds 2": the local tuning side by side

batch: $(VENV)/.batch-installed java $(MAR) ## score a dataset on Spark: make batch INPUT=reviews.jsonl.gz OUTPUT=out/ [BATCH_ARGS=...]
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make batch INPUT=<path or URI: jsonl[.gz]|csv|parquet> OUTPUT=<dir or URI> [BATCH_ARGS='--key-column id --jsonl'] (the key field defaults to key)"; exit 2; }
	$(PY) -m batch --input $(INPUT) --output $(OUTPUT) --mar $(MAR) $(BATCH_ARGS)

bench-batch: $(VENV)/.dev-installed java $(MAR) ## Spark batch job on 1,000,000 reviews (and 100,000, for memory) vs the in-process ceiling -> bench/results/batch.json (minutes)
	$(PY) -m bench.batch_job --mar $(MAR) $(BENCH_ARGS)

clean: ## remove the archive, logs and caches (keeps .venv and the trained artifacts)
	rm -rf $(MAR) model_store/sentiment_*.mar $(BIGRAM_MAR) dist logs tmp key_file.json .pytest_cache .ruff_cache
