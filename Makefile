# Two commands for a fresh machine: `make demo` and `make test`. Both set up the environment first.
VENV := .venv
PY := $(VENV)/bin/python
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup test demo eval bench clean

setup:
	@bash scripts/setup_env.sh

test: setup
	$(PY) -m pytest test -q

demo: setup
	$(VENV)/bin/jepa demo

eval: setup
	$(VENV)/bin/jepa eval --episodes 20 --seed 0 --json artifacts/eval.json

bench: setup
	$(VENV)/bin/jepa bench planner --json artifacts/bench_planner.json

clean:
	rm -rf build artifacts
