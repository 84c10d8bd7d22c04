# tessera -- the two commands of the Quick start:
#   make demo   set-up + build, then the main job on an embedded default
#   make test   set-up + build, then every test (C++ via ctest, Python via pytest, notebooks)
# Both are idempotent: set-up installs only what is missing, the first build is an
# editable pip install that configures CMake in build/, later builds are incremental.
PY      := .venv/bin/python
BUILD   := build
JOBS    ?= 2
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

.PHONY: all setup build test test-cpp test-python demo clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@if [ -f $(BUILD)/build.ninja ] && ls python/tessera/_core*.so >/dev/null 2>&1 && [ -f .venv/.tessera-editable ]; then \
	  cmake --build $(BUILD) -j $(JOBS); \
	else \
	  echo "tessera: first build (editable install, CMake in $(BUILD)/)"; \
	  TESSERA_CMAKE_BUILD_DIR=$(BUILD) TESSERA_BUILD_TESTS=1 TESSERA_JOBS=$(JOBS) \
	    $(PY) -m pip install --no-build-isolation --no-index --no-deps -e . && touch .venv/.tessera-editable; \
	fi

test: build
	@status=0; \
	ctest --test-dir $(BUILD) --output-on-failure -j 2 || status=1; \
	$(PY) -m pytest tests/python || status=1; \
	exit $$status

test-cpp: build
	ctest --test-dir $(BUILD) --output-on-failure -j 2

test-python: build
	$(PY) -m pytest tests/python

demo: build
	$(PY) examples/python/demo.py

clean:
	rm -rf $(BUILD) python/tessera/_core*.so python/*.egg-info
