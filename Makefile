# kiln - one Makefile for the whole tree.
#
#   make               build everything (MODE=default: -O2 -g, asserts on)
#   make run           install missing packages, build, start server + local pool
#   make test          install missing packages, build, run every check suite, lint the
#                      API document, run the dashboard's browser tests
#   make test-reference REF=DIR   reference-vector checks on DIR/*.safetensors and on
#                      the whole-model files tests/reference/gen_models.py writes (torch)
#   make test-containers             the image, compose, multi-container pools (podman)
#   make asan | lint | format-check | bench | fuzz | deps | clean
#
# Sources are found by wildcard, so adding a file needs no edit here:
#   common/*.c                       -> libkiln_common.a   (no MPI/ZeroMQ/MHD)
#   worker/{nn,models,data,jobs,export}/*.c, worker/*.c except main.c -> libkiln_worker.a
#   server/*.c except main.c         -> libkiln_server.a
#   server/cli/*.c                   -> kiln (the CLI)
#   tests/unit/check_<name>.c        -> one suite, suite_<name>(), in kiln-tests

MODE ?= default
V ?= 0
Q := $(if $(filter 1,$(V)),,@)
BUILD := build/$(MODE)
SHARED ?= ../shared
REF ?= $(SHARED)/reference

CC := gcc
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
# The OpenMP flavour of OpenBLAS shares one thread pool with our own OpenMP
# loops; the pthread flavour would spin its own threads against ours.
OPENBLAS_PC := /usr/lib/$(MULTIARCH)/openblas-openmp/pkgconfig
PKG_CONFIG := PKG_CONFIG_PATH=$(OPENBLAS_PC) pkg-config
PKGS := openblas jansson libmicrohttpd libzmq sqlite3 libcurl uuid zlib libsodium ompi-c check \
        yaml-0.1 libjpeg libpng

WARN := -Wall -Wextra -Werror -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wcast-qual -Wformat=2 -Wvla -Wdouble-promotion -Wundef
STD := -std=c11 -D_POSIX_C_SOURCE=200809L
# One build runs on any x86-64 CPU: the kernels choose their instruction set when the
# program starts (worker/nn/isa.h), so nothing here depends on the build machine.
# ARCH=native opts the code outside the kernels into this machine's instruction set
# (the binary then runs only on CPUs like it); any other value is passed to gcc as is.
ARCH ?=
ARCH_FLAGS := $(if $(filter native,$(ARCH)),-march=native,$(ARCH))

ifeq ($(MODE),default)
  OPT := -O2 -g
else ifeq ($(MODE),release)
  OPT := -O2 -g -DNDEBUG
else ifeq ($(MODE),debug)
  OPT := -O0 -g3
else ifeq ($(MODE),asan)
  OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else ifeq ($(MODE),tsan)
  OPT := -O1 -g -fsanitize=thread
else
  $(error unknown MODE=$(MODE): use default, release, debug, asan or tsan)
endif

PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
BLAS_RPATH = -Wl,-rpath,$(shell $(PKG_CONFIG) --variable=libdir openblas 2>/dev/null)

CPPFLAGS := -I. -MMD -MP
CFLAGS := $(STD) $(WARN) $(OPT) $(ARCH_FLAGS) -fopenmp
# The kernels are the hot loops: in the optimised modes let gcc vectorise harder; in
# every mode fuse multiply-adds where the instruction set has them. -Wno-psabi: the
# kernels pass 64-byte vectors only between static functions of one file, never across
# an ABI boundary, so gcc's note that their ABI differs without AVX-512 does not apply.
NN_OPT := $(if $(filter default release,$(MODE)),-O3,)
NN_CFLAGS := $(NN_OPT) -ffp-contract=fast -Wno-psabi
LDFLAGS := $(OPT) -fopenmp
LDLIBS = $(PKG_LIBS) $(BLAS_RPATH) -lm -lpthread

COMMON_SRC := $(sort $(wildcard common/*.c))
# worker/nn: the kernel files are built once per instruction set (below); isa.c (the
# dispatch table) and startup.c (what the process settles before main) are built once.
NN_DISPATCH_SRC := worker/nn/isa.c worker/nn/startup.c
NN_KERNEL_SRC := $(filter-out $(NN_DISPATCH_SRC),$(sort $(wildcard worker/nn/*.c)))
WORKER_SRC := $(NN_DISPATCH_SRC) \
              $(sort $(wildcard worker/models/*.c worker/data/*.c worker/jobs/*.c worker/export/*.c) \
                     $(filter-out worker/main.c,$(wildcard worker/*.c)))
SERVER_SRC := $(sort $(filter-out server/main.c,$(wildcard server/*.c)))
CLI_SRC := $(sort $(wildcard server/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/unit/*.c))
SUITES := $(patsubst tests/unit/check_%.c,%,$(filter tests/unit/check_%.c,$(TEST_SRC)))
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOLS = $(patsubst tests/tools/%.c,$(BIN)/%,$(TOOL_SRC))
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCHES = $(patsubst bench/%.c,$(BIN)/%,$(BENCH_SRC))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_COMMON := $(BUILD)/libkiln_common.a
LIB_WORKER := $(BUILD)/libkiln_worker.a
LIB_SERVER := $(BUILD)/libkiln_server.a
BIN := $(BUILD)/bin
PROGRAMS := $(BIN)/kiln-server $(BIN)/kiln-worker $(BIN)/kiln
TESTS := $(BIN)/kiln-tests
# A pool that speaks the protocol without the engine: a test double for tests/ and bench/.
TESTPOOL := $(BIN)/kiln-testpool

FORCE:
.PHONY: all build run test test-unit test-reference gen-ref test-integration test-api-doc test-browser asan lint format format-check \
        bench fuzz deps clean check-deps programs deps-build test-deploy test-containers

all: build
build: $(PROGRAMS) $(TESTS) $(BENCHES) $(TOOLS) $(TESTPOOL)
# Only what a deployment ships (deploy/Dockerfile builds this).
programs: $(PROGRAMS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

# ---- the kernels, once per instruction set -------------------------------------
# Each kernel file is compiled for every path of NN_ISAS into obj/worker/nn/ISA/; then
# objcopy renames the global symbols it defines (nn_conv2d_forward ->
# nn_conv2d_forward_avx2, in definitions and calls alike), so that each copy calls its
# own path's helpers, and worker/nn/isa.c defines the public names as calls through
# the table of the path chosen at start-up. The rename list is every global symbol the
# path's objects define, so a new kernel file needs no edit here.
NN_ISAS := generic avx2 avx512
ISA_FLAGS_generic := -march=x86-64 -mtune=generic
ISA_FLAGS_avx2 := -march=x86-64-v3 -mtune=generic
ISA_FLAGS_avx512 := -march=x86-64-v4 -mtune=generic -mprefer-vector-width=512
nn_raw = $(patsubst worker/nn/%.c,$(BUILD)/obj/worker/nn/$(1)/%.raw.o,$(NN_KERNEL_SRC))
nn_obj = $(patsubst worker/nn/%.c,$(BUILD)/obj/worker/nn/$(1)/%.o,$(NN_KERNEL_SRC))
NN_OBJS = $(foreach isa,$(NN_ISAS),$(call nn_obj,$(isa)))

define NN_ISA_RULES
$(BUILD)/obj/worker/nn/$(1)/%.raw.o: worker/nn/%.c
	@mkdir -p $$(dir $$@)
	@echo "  CC      $$< ($(1))"
	$$(Q)$$(CC) $$(CPPFLAGS) $$(PKG_CFLAGS) $$(CFLAGS) $$(NN_CFLAGS) $$(ISA_FLAGS_$(1)) -c $$< -o $$@
$(BUILD)/gen/nn_syms_$(1).txt: $$(call nn_raw,$(1))
	@mkdir -p $$(dir $$@)
	$$(Q)nm -g --defined-only $$^ | awk 'NF == 3 { print $$$$3, $$$$3 "_$(1)" }' | sort -u > $$@.tmp
	$$(Q)mv $$@.tmp $$@
$(BUILD)/obj/worker/nn/$(1)/%.o: $(BUILD)/obj/worker/nn/$(1)/%.raw.o $(BUILD)/gen/nn_syms_$(1).txt
	$$(Q)objcopy --redefine-syms=$(BUILD)/gen/nn_syms_$(1).txt $$< $$@
endef
$(foreach isa,$(NN_ISAS),$(eval $(call NN_ISA_RULES,$(isa))))

$(LIB_COMMON): $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(LIB_WORKER): $(call obj,$(WORKER_SRC)) $(NN_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^
# The files kiln-server serves as they are (the API document and its schema,
# the dashboard) are compiled in, so the binary needs no files beside it; each
# is URLPATH=FILE. The chart library comes from npm (`make deps` puts it in
# server/dashboard/node_modules); without it (no npm) the build embeds
# server/dashboard/fallback/, and the dashboard says its charts are missing.
UPLOT_DIST := server/dashboard/node_modules/uplot/dist
UPLOT_JS := $(firstword $(wildcard $(UPLOT_DIST)/uPlot.iife.min.js) server/dashboard/fallback/uPlot.min.js)
UPLOT_CSS := $(firstword $(wildcard $(UPLOT_DIST)/uPlot.min.css) server/dashboard/fallback/uPlot.min.css)
DASHBOARD_SRC := $(sort $(wildcard server/dashboard/*.js server/dashboard/*.css))
EMBED := /=server/dashboard/index.html /api/v1/openapi.yaml=api/openapi.yaml \
  /api/v1/schemas/jobspec.schema.json=api/schemas/jobspec.schema.json \
  $(foreach f,$(DASHBOARD_SRC),/dashboard/$(notdir $(f))=$(f)) \
  /dashboard/uPlot.min.js=$(UPLOT_JS) /dashboard/uPlot.min.css=$(UPLOT_CSS)
EMBED_SRC := $(foreach e,$(EMBED),$(lastword $(subst =, ,$(e))))
# Rewritten only when the list changes (npm's files keep their old mtimes).
$(BUILD)/gen/embed.list: FORCE
	@mkdir -p $(dir $@)
	@echo '$(EMBED)' | cmp -s - $@ || echo '$(EMBED)' > $@
$(BUILD)/gen/embed.c: $(EMBED_SRC) $(BUILD)/gen/embed.list server/embed.sh
	@mkdir -p $(dir $@)
	$(Q)sh server/embed.sh $(EMBED) > $@.tmp && mv $@.tmp $@
$(BUILD)/gen/embed.o: $(BUILD)/gen/embed.c
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@
$(LIB_SERVER): $(call obj,$(SERVER_SRC)) $(BUILD)/gen/embed.o
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/kiln-worker: $(call obj,worker/main.c) $(LIB_WORKER) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BIN)/kiln-server: $(call obj,server/main.c) $(LIB_SERVER) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BIN)/kiln: $(call obj,$(CLI_SRC)) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(TESTPOOL): $(call obj,tests/pool/testpool.c tests/unit/fakepool.c) $(LIB_WORKER) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The test runner registers every suite found under tests/unit/.
$(BUILD)/gen/suites.inc: $(TEST_SRC) Makefile
	@mkdir -p $(dir $@)
	@{ for s in $(SUITES); do echo "SUITE($$s)"; done; } > $@.tmp && mv $@.tmp $@
$(call obj,tests/run_tests.c): $(BUILD)/gen/suites.inc
$(call obj,tests/run_tests.c): CPPFLAGS += -I$(BUILD)/gen
$(TESTS): $(call obj,tests/run_tests.c $(TEST_SRC)) $(LIB_SERVER) $(LIB_WORKER) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Each bench/<name>.c is one program linked against the engine.
$(BIN)/bench_%: $(call obj,bench/bench_%.c) $(LIB_WORKER) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Each tests/tools/<name>.c is a small program the integration tests use.
$(BIN)/%: $(call obj,tests/tools/%.c) $(LIB_WORKER) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# ---- set-up -----------------------------------------------------------------
# The Debian packages that building the programs needs (deploy/Dockerfile's build stage),
# then every one the build, the tests and `make run` need.
DEB_BUILD := build-essential pkg-config check libsubunit-dev libopenblas-openmp-dev \
  libjansson-dev libmicrohttpd-dev libzmq3-dev libopenmpi-dev libsqlite3-dev \
  libcurl4-openssl-dev uuid-dev zlib1g-dev libsodium-dev libyaml-dev libjpeg62-turbo-dev \
  libpng-dev
DEB_PACKAGES := $(DEB_BUILD) openmpi-bin sqlite3 curl dataset-fashion-mnist \
  python3-torch python3-torchvision python3-pil python3-onnx \
  iproute2 procps psmisc jq openssl \
  nodejs npm chromium
# Only for `make bench`, `make fuzz`, `make lint`, `make format-check`.
DEB_EXTRA := python3-numpy wrk clang-14 libclang-rt-14-dev cppcheck clang-tidy \
  clang-format

# npm projects (package.json + package-lock.json): the dashboard's chart
# library, the browser tests' and API linter's tools, the manifest validator, and
# onnxruntime for the ONNX export checks (tests/export).
NPM_DIRS := server/dashboard tests/browser tests/deploy tests/export

deps:
	@./tests/deps.sh $(DEB_PACKAGES)
	@./tests/npm-deps.sh $(NPM_DIRS)
deps-build:
	@./tests/deps.sh $(DEB_BUILD)
deps-extra: deps
	@./tests/deps.sh $(DEB_EXTRA)

# ---- the two front-door commands ---------------------------------------------
run: deps
	@$(MAKE) --no-print-directory MODE=release build
	@./deploy/run-local.sh build/release/bin

test: deps
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory test-unit test-integration test-api-doc test-browser \
	    test-deploy

# The suites that exercise the kernels. test-unit runs every suite on the kernel path
# the CPU chooses (or KILN_ISA forces), then the kernel suites again on each lower path
# the CPU can run, so that every path a user may get stays exact.
ENGINE_SUITES := act,attention,batchnorm,conv,dropout,fusion,gemm,isa,layernorm,linear,loss,optim,pool
ENGINE_SUITES := $(ENGINE_SUITES),ref_cnn,ref_dense,reference,netplan
test-unit: $(TESTS) gen-ref
	KILN_REF=$(REF_DIRS) OMP_NUM_THREADS=2 $(TESTS)
	@top=$${KILN_ISA:-$$($(TESTS) --isas | tail -n 1)}; \
	for isa in $$($(TESTS) --isas); do \
	    [ "$$isa" = "$$top" ] && break; \
	    echo "== the kernel suites on the $$isa path (KILN_ISA=$$isa)"; \
	    KILN_ISA=$$isa KILN_SUITES=$(ENGINE_SUITES) KILN_REF=$(REF_DIRS) OMP_NUM_THREADS=2 \
	        $(TESTS) || exit 1; \
	done

test-reference: $(TESTS) gen-ref
	KILN_REF=$(REF_DIRS) CK_RUN_SUITE=reference $(TESTS)

# Whole-model reference files of the torchvision ResNets and the 224-stem CeiT/DeiT
# and MobileNetV2, made by PyTorch itself (tests/reference/gen_models.py) into
# $(BUILD)/ref when /usr/bin/python3 has torch and torchvision (python3-torch,
# python3-torchvision); the reference suite then checks them beside the shared ones.
# KILN_REF is a colon-separated list of folders.
GEN_REF := $(BUILD)/ref
REF_DIRS = $(REF)$(if $(wildcard $(GEN_REF)/*.safetensors),:$(GEN_REF))
gen-ref: $(GEN_REF)/.stamp
$(GEN_REF)/.stamp: tests/reference/gen_models.py $(wildcard $(REF)/torch/models.py)
	@mkdir -p $(GEN_REF)
	@if /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null; then \
	    echo "  GEN     $(GEN_REF) (tests/reference/gen_models.py)"; \
	    OMP_NUM_THREADS=2 /usr/bin/python3 tests/reference/gen_models.py $(GEN_REF) $(REF) && touch $@; \
	else \
	    echo "  SKIP    $(GEN_REF): /usr/bin/python3 has no torch/torchvision (make deps installs them)"; \
	fi

test-integration: $(PROGRAMS) $(TOOLS)
	@./tests/integration/run.sh $(BIN)

# api/openapi.yaml through redocly lint, its recommended rules with warnings as
# errors (recommended-strict); .redocly.lint-ignore.yaml justifies what it lets pass.
test-api-doc:
	@tests/browser/node_modules/.bin/redocly lint --extends=recommended-strict --format=stylish api/openapi.yaml

# The dashboard in headless chromium against real servers; screenshots in $(BUILD)/screenshots.
test-browser: $(PROGRAMS) $(TESTPOOL)
	@./tests/browser/run.sh $(BIN) $(BUILD)/screenshots

# The Kubernetes manifests, offline: every object against the Kubernetes schemas, the
# MPIJob against the MPI Operator's CRD schema (tests/deploy/).
test-deploy:
	@node tests/deploy/validate.mjs deploy/k8s

# The image built from this tree, the compose cluster with a pool across two containers,
# graceful stops and a server restart, for real (podman, which it installs as root).
test-containers: deps
	@$(MAKE) --no-print-directory $(BIN)/kiln
	@./tests/containers/run.sh $(BIN)

# ---- quality ----------------------------------------------------------------
asan: deps
	@$(MAKE) --no-print-directory MODE=asan build
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:fast_unwind_on_malloc=0:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1 KILN_REF=$(REF) OMP_NUM_THREADS=2 build/asan/bin/kiln-tests

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find common worker server tests -name '*.[ch]')
lint:
	@./tests/deps.sh cppcheck clang-tidy
	@./tests/lint.sh
format-check:
	@./tests/deps.sh clang-format
	clang-format --dry-run --Werror $(C_FILES)
format:
	clang-format -i $(C_FILES)

bench: deps-extra
	@$(MAKE) --no-print-directory MODE=release build
	@./bench/run.sh build/release/bin

fuzz: deps-extra
	@./tests/fuzz/run.sh

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
