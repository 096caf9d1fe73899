# The README's commands: `make demo` (a simulated cluster with bundled traces) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared

.PHONY: install testbed test crds demo demo-down bench bench-forecast bench-forecast-ablation bench-forecast-peers bench-forecast-speed bench-planner bench-cycle bench-scaling

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Builds (once, cached by version) etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok and helm (needs go >= 1.24); installs Prometheus from Debian.
testbed:
	bash hack/testbed.sh

test: install testbed
	$(PY) -m pytest

crds: install
	$(VENV)/bin/quartermaster crds crds

demo: install testbed
	$(PY) hack/demo.py up

demo-down:
	$(PY) hack/demo.py down

bench: bench-forecast bench-planner bench-cycle bench-scaling

bench-forecast: install
	$(PY) benchmarks/forecast.py --shared $(SHARED)

# Each forecasting layer switched off in turn, judged by leave-one-family-out cross-validation.
bench-forecast-ablation: install
	$(PY) benchmarks/forecast_ablation.py --shared $(SHARED)

# quartermaster.predictors beside statsforecast's AutoETS and MSTL on the same origins (the `bench` extra):
# about 11 of the shared evaluation's origins per trace, since AutoETS takes 10-40 s a call.
PEERS_ORIGINS ?= 11
bench-forecast-peers: install
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/forecast_peers.py --shared $(SHARED) --origins $(PEERS_ORIGINS)

# forecast_many's time against an earlier revision's (AGAINST, default HEAD), run by run in one process.
AGAINST ?= HEAD
bench-forecast-speed: install
	$(PY) benchmarks/forecast_speed.py --against $(AGAINST)

bench-planner: install
	$(PY) benchmarks/planner.py --shared $(SHARED)

# A real Prometheus (from the test bed) backfilled with 1,000 and 10,000 workloads' history,
# cached under ~/.cache/quartermaster/bench-cycle/: the first run builds it (minutes).
bench-cycle: install testbed
	$(PY) benchmarks/cycle.py

# Predictive replayed through `quartermaster replay` beside HPA-like, VPA-like, static and
# oracle references on SHARED/data/traces (a minute or two); prints the goal beside it.
bench-scaling: install
	$(PY) benchmarks/scaling.py --shared $(SHARED)
