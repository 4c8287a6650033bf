# mxopt: two commands.
#   make run   - build the guide from freshly executed notebooks and serve it on http://127.0.0.1:8000
#   make test  - run every test: unit + MXNet golden cases, CUDA kernels (simulator), notebooks, site in a browser
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test venv demo site serve test-unit test-cuda test-notebooks test-site browser-deps bench clean

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade -q pip
	$(PY) -m pip install -q -e '.[test,docs]'
	touch $(STAMP)

demo: venv
	$(PY) -m mxopt.demo

run: serve

test: venv browser-deps
	$(MAKE) test-unit test-cuda test-notebooks test-site

test-unit: venv
	$(PY) -m pytest -q -n 2 --dist loadscope tests -m "not cuda and not browser"

test-cuda: venv
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest -q tests -m cuda

test-notebooks: venv
	MPLBACKEND=Agg $(PY) -m pytest -q -n 2 --dist loadscope --nbval-lax notebooks

bench: venv
	$(PY) benchmarks/bench_adam.py

clean:
	rm -rf site .cache build *.egg-info
