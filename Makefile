# `make run` sets up and starts the app; `make test` sets up and runs the tests.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
IMAGES ?=
export GRADIO_ANALYTICS_ENABLED := False
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup models run test bench eval

$(STAMP): requirements.txt models/requirements.txt tests/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r models/requirements.txt -r tests/requirements.txt
	# axe-core for the accessibility test (the npm registry; the app itself needs no npm package)
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node axe-core@4.14.1
	touch $@

setup: $(STAMP)

PRECISION ?= $(or $(SEARCHCORE_PRECISION),fp32)

models: setup
	$(PY) -m searchcore build-models --precision $(PRECISION)

run: models
	$(PY) app.py --precision $(PRECISION) $(if $(IMAGES),--images $(IMAGES))

test: setup
	$(PY) -m searchcore build-models --precision int8
	$(PY) -m pytest -ra --durations=25 -n 2 --dist loadfile tests

bench: models
	$(PY) scripts/benchmark.py $(if $(IMAGES),$(IMAGES),../shared/datasets/corel1k)

eval: models
	$(PY) -m searchcore eval $(if $(IMAGES),$(IMAGES),../shared/datasets/corel1k)
