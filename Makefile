# Two commands for a fresh machine: `make demo` and `make test`. Both set up the environment first.
VENV := .venv
PY := $(VENV)/bin/python
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup test test-fast test-nodes test-slow demo eval bench clean

setup:
	@bash scripts/setup_env.sh

# Every test: the unit, nodes and slow tiers (pytest.ini; test/conftest.py gives each test its tier).
test: setup
	$(PY) -m pytest test -q

# The unit tier: no DDS, no training runs or wheel builds; about 30 s on 2 idle cores, a minute or two on busy ones.
test-fast: setup
	$(PY) -m pytest test -q -m unit

# The tests that start ROS nodes or otherwise talk DDS.
test-nodes: setup
	$(PY) -m pytest test -q -m nodes

# Long tests without DDS: training runs, long sim episodes, the wheel build and its `jepa` runs.
test-slow: setup
	$(PY) -m pytest test -q -m slow

demo: setup
	$(VENV)/bin/jepa demo

eval: setup
	$(VENV)/bin/jepa eval --episodes 20 --seed 0 --json artifacts/eval.json

bench: setup
	$(VENV)/bin/jepa bench planner --json artifacts/bench_planner.json

clean:
	rm -rf build artifacts
