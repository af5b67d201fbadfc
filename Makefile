# One entry point for humans and CI. Both targets create .venv and install the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test devnet lint typecheck bench fuzz soak floods clean sstests

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadgroup --durations=20

devnet: $(STAMP)
	$(BIN)/appchain devnet --nodes 12 --home .devnet $(if $(SECONDS),--seconds $(SECONDS))

bench: $(STAMP)
	$(BIN)/python -m bench.smt
	$(BIN)/python -m bench.replay
	$(BIN)/python -m bench.consensus
	$(BIN)/python -m bench.devnet
	$(BIN)/python -m bench.rpc
	$(BIN)/python -m bench.light
	$(BIN)/python -m bench.swarm
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.statesync
	$(BIN)/python -m bench.forged
	$(BIN)/python -m bench.topology

SOAK_SEEDS ?= 1000
NETNS_SCHEDULES ?= 200
FLOOD_SECONDS ?= 60
CRASH_KILLS ?= 100
CRASH_SEED ?= 2026
TOPOLOGY_NODES ?= 2000
TOPOLOGY_SEEDS ?= 4

# the randomized fault simulations with many more seeds than CI runs (it runs 20 of the 30-node
# faults and 50 of the outages of 4 to 14 nodes), the randomized fault schedules over 12 node
# processes in network namespaces (CI runs 5; needs root), the crash loop of a network node killed
# CRASH_KILLS times (CI kills it 5 times), then the floods with FLOOD_SECONDS a phase; and the
# bounded topology's faults at TOPOLOGY_NODES nodes, TOPOLOGY_SEEDS seeds (CI: 500 nodes, 2 seeds)
soak: $(STAMP)
	APPCHAIN_SIM_SEEDS=$(SOAK_SEEDS) $(BIN)/pytest -q tests/test_simulator.py \
		-k "safety_and_finality_under_faults or regrowth_through_outages"
	APPCHAIN_TOPOLOGY_NODES=$(TOPOLOGY_NODES) APPCHAIN_TOPOLOGY_SEEDS=$(TOPOLOGY_SEEDS) \
		$(BIN)/pytest -q tests/test_topology_sim.py -k at_scale
	NETNS_SCHEDULES=$(NETNS_SCHEDULES) $(BIN)/pytest -q -s tests/test_netns.py -k randomized_fault_schedules
	APPCHAIN_CRASH_LOOP_KILLS=$(CRASH_KILLS) APPCHAIN_CRASH_LOOP_SEED=$(CRASH_SEED) \
		$(BIN)/pytest -q -s tests/test_crash_network.py
	$(MAKE) floods

# floods from one host against one of 12 node processes in network namespaces, FLOOD_SECONDS a
# phase (CI runs 4 s; needs root): the table of block intervals, honest requests and refusals
floods: $(STAMP)
	FLOOD_SECONDS=$(FLOOD_SECONDS) $(BIN)/pytest -q -s tests/test_floods.py -k floods_from_one_host

FUZZ_RUNS ?= 1000000
FUZZ_TARGETS := p2p_frame block genesis json_rpc storage_rpc onion onion_layer public_port admin_port p2p_port storage_port

fuzz: $(STAMP)
	@mkdir -p .fuzz
	@for target in $(FUZZ_TARGETS); do \
		$(BIN)/python -m tests.fuzz $$target --runs $(FUZZ_RUNS) > .fuzz/$$target.log 2>&1 \
			|| { tail -40 .fuzz/$$target.log; exit 1; }; \
		grep -E '^fuzz ' .fuzz/$$target.log; \
	done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .devnet .sstests

# session-storage-server's own network-tests (not in this repository: CHECKOUT is a checkout of
# session-storage-server, commit 8616387 or later, or its network-tests/ folder) against a fresh
# 5-node devnet, through the OxenMQ stand-ins of tests/sstests; results in .sstests/results
CHECKOUT ?=
SSTESTS_NODES ?= 5
sstests: $(STAMP)
	@test -n "$(CHECKOUT)" || { echo "usage: make sstests CHECKOUT=/path/to/session-storage-server"; exit 2; }
	tests/sstests/run.sh --checkout "$(CHECKOUT)" --nodes $(SSTESTS_NODES)
