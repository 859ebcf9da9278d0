# streamfit: every target sets up what it needs (.venv, dependencies, the local Kafka broker).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo flights-model test check lint typecheck bench bench-quick bench-text bench-delivery bench-quality bench-serving kafka-start kafka-stop kafka-status clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/streamfit demo
	@echo "The streamfit command is in $(VENV)/bin: run '. $(VENV)/bin/activate' to put it on your PATH."

# the flights demo's pretrained model: gradient boosting trained on the bundled airline delays,
# exported to ONNX (streamfit.cli.flights_model); 'streamfit demo flights' uses this file
flights-model: flights_gbm.onnx

flights_gbm.onnx: $(STAMP) src/streamfit/cli/flights_model.py
	$(BIN)/python -m streamfit.cli.flights_model $@

test: $(STAMP) check
	$(BIN)/pytest -q

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# bench/setup installs .[dev,bench] and the Quix Streams baseline's own environment (once).
bench: $(STAMP)
	bench/setup $(BIN)/python $(PYTHON)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.delivery
	$(BIN)/python -m bench.serving
	$(BIN)/python -m bench.text

# learning quality against River on the shared streams (../shared/datasets), in process
bench-quality: $(STAMP)
	$(BIN)/python -m bench.quality

# single-event POST /predict latency at 500 requests/s, against a bare FastAPI endpoint
bench-serving: $(STAMP)
	$(BIN)/python -m bench.serving

bench-text: $(STAMP)
	$(BIN)/python -m bench.text

bench-delivery: $(STAMP)
	$(BIN)/python -m bench.delivery

bench-quick: $(STAMP)
	bench/setup $(BIN)/python $(PYTHON)
	$(BIN)/python -m bench.run --quick

# the local broker of `streamfit kafka start` (127.0.0.1:9092 unless that port is taken)
kafka-start: $(STAMP)
	$(BIN)/streamfit kafka start

kafka-stop: $(STAMP)
	$(BIN)/streamfit kafka stop

kafka-status: $(STAMP)
	$(BIN)/streamfit kafka status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
