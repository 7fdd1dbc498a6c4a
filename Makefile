# `make reproduce` runs the main job, `make test` the tests; each creates .venv and installs
# the project into it on first use (again whenever pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
# parallel runs of the main job, one thread each
JOBS ?= 2
# where the main job writes its tables, report and figures
RESULTS ?= results/claims
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install reproduce test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job: the cell zoo's table, experiment=claims (data for every claim S1-S7), the report.
# The training cases run $(JOBS) at a time; the throughput cases after them, one at a time in one
# process, so that no other job shares the machine while they are timed, over the size grid S5
# is judged on (each size a part; 5 timed calls per pass, the medians paired by seed over 3 seeds).
SIZES := cell.hidden_size=32,128,512 throughput.batch_size=1,64 task.seq_len=50 throughput.repeats=5 throughput.warmup=2
reproduce: $(STAMP)
	$(PY) -m bench.zoo
	$(VENV)/bin/rnnbench -m hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS) experiment=claims \
		'case=glob(*,exclude=*-throughput-*)' results_dir=$(RESULTS) progress=false
	$(VENV)/bin/rnnbench -m experiment=claims 'case=glob(*-throughput-*)' $(SIZES) results_dir=$(RESULTS) progress=false
	$(VENV)/bin/rnnbench-report $(RESULTS)

test: $(STAMP)
	$(PY) -m pytest

# Benchmarks on one thread (RNNBENCH_THREADS=N for another count): the grid of cell x
# implementation x size, saved as JSON, then the speed goals as ratios measured in one process.
bench: $(STAMP)
	mkdir -p results/bench
	$(PY) -m pytest tests/benchmarks -s -p no:cacheprovider --benchmark-enable --benchmark-sort=mean \
		--benchmark-columns=median,iqr,ops,rounds --benchmark-json=results/bench/benchmarks.json

clean:
	rm -rf $(VENV) .pytest_cache
