# mxopt: two commands.
#   make run   - build the guide from freshly executed notebooks and serve it on http://127.0.0.1:8000
#   make test  - run every test: unit + MXNet golden cases, CUDA kernels (simulator), notebooks, site in a browser
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test venv demo executed site serve test-unit test-cuda test-notebooks test-site browser-deps bench clean

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade -q pip
	$(PY) -m pip install -q -e '.[test,docs,mpi]'
	touch $(STAMP)

demo: venv
	$(PY) -m mxopt.demo

run: serve

# The guide: tools/execute_notebooks.py executes the notebooks, JOBS at a time,
# into .cache/executed/ and reuses a copy only while its key (the notebook, every
# file of mxopt/, the installed versions) is unchanged; mkdocs builds the pages
# from those copies (the hook refuses a missing or stale one). MathJax is copied
# into the site from the pip package of the docs extra (tools/mathjax_files.py),
# so the build downloads nothing.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
PORT   ?= 8000
# Notebooks run JOBS at a time, one per core: OpenBLAS's own threads would then
# only contend (measured: a digits MLP fit at batch 512 took 7 s with them and
# 0.3 s without, on a busy 2-core machine).
NB_ENV := OPENBLAS_NUM_THREADS=1

executed: venv
	$(NB_ENV) $(PY) tools/execute_notebooks.py --jobs $(JOBS)

# The build itself is skipped when nothing it reads changed since the last one
# (site/.built is newer than every input: the pages, the hooks, the notebooks,
# the package whose docstrings make the API reference, and the executed copies'
# key files, which change whenever a notebook is executed again, e.g. after an
# installed version changed); a second `make run` then serves at once.
SITE_INPUTS = mkdocs.yml $(STAMP) $(shell find docs tools notebooks mxopt -type f \
  -not -path '*/__pycache__/*' -not -path '*/.ipynb_checkpoints/*' 2>/dev/null) \
  $(wildcard .cache/executed/*.key.json)

site: executed
	@$(MAKE) --no-print-directory site/.built

site/.built: $(SITE_INPUTS)
	$(MKDOCS) build --strict --clean
	touch $@

serve: site
	$(PY) tools/serve.py --dir site --port $(PORT)

# Headless Chromium for the browser test: Debian's package, installed when
# missing and possible; otherwise tests/test_site.py skips its browser tests.
browser-deps:
	@if [ -n "$$CHROMIUM" ] && [ -x "$$CHROMIUM" ]; then \
	  echo "browser-deps: using $$CHROMIUM"; \
	elif command -v chromium >/dev/null 2>&1; then \
	  echo "browser-deps: $$(command -v chromium) is installed"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "browser-deps: no apt-get on this machine; install Chromium yourself, or the browser tests are skipped"; \
	else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "browser-deps: installing chromium needs root (apt-get install chromium); the browser tests are skipped"; exit 0; fi; \
	  echo "browser-deps: apt-get install chromium"; \
	  ( $$SUDO apt-get update -qq && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null ) \
	  || echo "browser-deps: could not install chromium; the browser tests are skipped"; \
	fi

test: venv browser-deps
	$(MAKE) test-unit test-cuda test-notebooks test-site

# The docstrings' examples are tests too (doctests of every module of mxopt/),
# in a run of their own: --doctest-modules over tests/ would import its scripts.
test-unit: venv
	$(PY) -m pytest -q -n 2 --dist loadscope tests -m "not cuda and not browser"
	MPLBACKEND=Agg $(PY) -m pytest -q -n 2 --doctest-modules mxopt

test-cuda: venv
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest -q tests -m cuda

# The notebooks are tests: nbval runs each one in a fresh kernel and fails the
# cell that raises (an assert included; --nbval-lax compares no outputs). The
# plugin tools/nbval_executed.py keeps what nbval executed as the site's executed
# copies, so test-site's `make site` finds them current and executes nothing
# again; hence the inline backend (PNG figures, drawn by Agg) that the pages need.
test-notebooks: venv
	$(NB_ENV) MPLBACKEND=module://matplotlib_inline.backend_inline $(PY) -m pytest -q -n 2 --dist loadscope \
	  --nbval-lax -p tools.nbval_executed notebooks

test-site: venv browser-deps site
	MXOPT_SITE_DIR=site $(PY) -m pytest -q -m browser tests/test_site.py

bench: venv
	$(PY) benchmarks/bench_adam.py && $(PY) benchmarks/bench_optimizers.py && $(PY) benchmarks/bench_layerwise.py && $(PY) benchmarks/bench_online.py

clean:
	rm -rf site .cache build *.egg-info
