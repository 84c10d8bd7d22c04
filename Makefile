# tessera -- the two commands of the Quick start:
#   make demo   set-up + build, then the main job on an embedded default
#   make test   set-up + build, then every test (C++ via ctest, Python via pytest, notebooks,
#               each fuzz target for 10 s)
# More checks (docs/testing.md), each in a build directory of its own:
#   make fuzz       the libFuzzer targets (clang, build-fuzz/): each until FUZZ_RUNS executions
#                   or FUZZ_SECONDS, whichever comes first
#   make test-asan  the C++ tests under AddressSanitizer + UBSan (g++, build-asan/)
#   make test-tsan  the runtime and adapt C++ tests under ThreadSanitizer (g++, build-tsan/)
#   make docs       the reference documentation (Sphinx, warnings are errors) in build/docs/
# Both are idempotent: set-up installs only what is missing, the first build is an
# editable pip install that configures CMake in build/, later builds are incremental.
PY      := .venv/bin/python
BUILD   := build
JOBS    ?= 2
FUZZ_SECONDS ?= 3600
FUZZ_RUNS    ?= 10000000
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

.PHONY: all setup build test test-cpp test-python demo clean fuzz fuzz-build fuzz-seeds test-asan test-tsan docs

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
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10 || status=1; \
	$(MAKE) --no-print-directory docs || status=1; \
	exit $$status

test-cpp: build
	ctest --test-dir $(BUILD) --output-on-failure -j 2

test-python: build
	$(PY) -m pytest tests/python

# libFuzzer targets (fuzz/CMakeLists.txt, a clang project of its own): never touches build/.
fuzz-build: setup
	@[ -f build-fuzz/build.ninja ] || CC=clang CXX=clang++ cmake -S fuzz -B build-fuzz -G Ninja >/dev/null
	nice -n 19 cmake --build build-fuzz -j $(JOBS)

fuzz: fuzz-build
	fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_RUNS)

# Rewrites the generated seeds of fuzz/corpus/ (regression-* inputs are kept).
fuzz-seeds: fuzz-build build
	$(PY) fuzz/make_seeds.py

test-asan: setup
	JOBS=$(JOBS) scripts/sanitize.sh asan

test-tsan: setup
	JOBS=$(JOBS) scripts/sanitize.sh tsan

# HTML reference from the docstrings (autodoc) and the guides in docs/ (Markdown via MyST).
docs: build
	$(PY) -m sphinx -b html -q -W --keep-going -E docs $(BUILD)/docs
	@echo "tessera: documentation in $(BUILD)/docs/index.html"

demo: build
	$(PY) examples/python/demo.py

clean:
	rm -rf $(BUILD) build-fuzz build-asan build-tsan python/tessera/_core*.so python/tessera/_testhooks*.so python/*.egg-info
