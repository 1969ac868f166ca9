# dynrec - build. `make help` lists the targets.
#
# Variants build into separate folders: build/release (default), build/asan, build/tsan,
# build/fuzz. Every target first runs scripts/deps.sh once (a stamp file remembers it).

CC      ?= cc
BUILD   ?= build/release
OPT     ?= -O2 -g
SAN     ?=
WERROR  ?= -Werror
# evaluated when a recipe runs, i.e. after scripts/deps.sh installed the compiler
NO_TRUNC = $(shell $(CC) -Werror -Wno-format-truncation -E -x c /dev/null >/dev/null 2>&1 && echo -Wno-format-truncation)
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) $(SAN) -pthread -fno-strict-aliasing \
	-Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 $(NO_TRUNC) -Wno-format-nonliteral -Wvla -Wpointer-arith -Wno-unused-parameter $(WERROR) \
	-Iinclude -Isrc $(shell pkg-config --cflags openblas 2>/dev/null) $(LLAMA_CFLAGS) $(CFLAGS)
# llama.cpp: build/llama.mk (written by scripts/deps.sh) sets LLAMA_DIR, LLAMA_CFLAGS and
# LLAMA_LIBS for the static CPU build in the cache (or the one pkg-config / LLAMA_DIR gave).
# A plain include: when deps.sh fails, make stops at its message instead of going on.
# `make help` and `make clean` need neither.
ifneq ($(filter-out help clean,$(or $(MAKECMDGOALS),all)),)
include build/llama.mk
endif
LIBS    = $(LLAMA_LIBS) -lcurl -lopenblas -ljansson -lmicrohttpd -lsqlite3 -lhiredis -lstdc++ -lpthread -lm
# the one C++ file: src/ann_hnsw.cc over hnswlib's headers (a stub when they are absent)
CXX     ?= g++
CXXFLAGS_ALL = -std=c++17 -D_GNU_SOURCE $(OPT) $(SAN) -pthread -Wall -Wextra $(WERROR) -Iinclude -Isrc $(CXXFLAGS)
LDFLAGS_ALL = $(SAN) -pthread $(LDFLAGS)

SRC     := $(sort $(wildcard src/*.c))
# the dashboard (ui/ and uPlot from the cache, UPLOT_DIR in build/llama.mk) as C arrays
UI      := $(sort $(wildcard ui/*))
UI_C    := $(BUILD)/gen/ui_files.c
SRCXX   := $(sort $(wildcard src/*.cc))
OBJ     := $(SRC:src/%.c=$(BUILD)/obj/%.o) $(SRCXX:src/%.cc=$(BUILD)/obj/%.o) $(BUILD)/obj/ui_files.o
LIB     := $(BUILD)/libdynrec.a
BIN     := $(BUILD)/dynrec
UNIT    := $(sort $(wildcard tests/unit/test_*.c))
UNITBIN := $(UNIT:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
REPLAY  := $(FUZZ:tests/fuzz/fuzz_%.c=$(BUILD)/tests/replay_%)
BENCH   := $(sort $(wildcard bench/bench_*.c))
BENCHBIN:= $(BENCH:bench/%.c=$(BUILD)/%)
LIVE    := $(sort $(wildcard bench/live_*.c))
LIVEBIN := $(LIVE:bench/%.c=$(BUILD)/%)
DEPS    := build/.deps-ok

.PHONY: all test asan tsan demo bench fuzz help clean deps unit
.DEFAULT_GOAL := all

all: $(DEPS) $(BIN)

help:
	@echo "make            build the library and the dynrec CLI (build/release)"
	@echo "make demo       synthesise data, train, evaluate and print a summary"
	@echo "make test       build and run every test (unit, fuzz corpus replay, end-to-end)"
	@echo "make asan       the tests under AddressSanitizer + UBSan (build/asan)"
	@echo "make tsan       the tests under ThreadSanitizer (build/tsan)"
	@echo "make bench      build and run the benchmarks (bench/, results in docs/BENCH.md)"
	@echo "make fuzz       run each libFuzzer target for FUZZ_SECONDS (clang, build/fuzz)"
	@echo "make clean      remove build/"

build/llama.mk: scripts/deps.sh scripts/llama.sh
	@sh scripts/deps.sh

$(DEPS): build/llama.mk
	@mkdir -p build && touch $@

deps: $(DEPS)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) include/dynrec.h | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(UI_C): $(UI) scripts/embed.sh build/llama.mk
	sh scripts/embed.sh $@ ui $(UPLOT_DIR)

$(BUILD)/obj/ui_files.o: $(UI_C) src/serve_ui.h | $(DEPS)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/obj/%.o: src/%.cc $(wildcard src/*.h) | $(DEPS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_ALL) -c $< -o $@

$(LIB): $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(wildcard cli/*.c) $(wildcard cli/*.h) $(LIB)
	$(CC) $(CFLAGS_ALL) -Icli $(filter %.c,$^) $(LIB) $(LDFLAGS_ALL) $(LIBS) -o $@

$(BUILD)/tests/test_%: tests/unit/test_%.c $(wildcard tests/unit/*.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes $< $(LIB) $(LDFLAGS_ALL) -lcmocka $(LIBS) -o $@

$(BUILD)/tests/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes tests/fuzz/replay.c $< $(LIB) $(LDFLAGS_ALL) $(LIBS) -o $@

$(BUILD)/bench_%: bench/bench_%.c bench/bench.h $(LIB)
	$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes $< $(LIB) $(LDFLAGS_ALL) $(LIBS) -o $@

# the P-LIVE programs (bench/live_replay.sh runs them; bench/run.sh does not)
$(BUILD)/live_%: bench/live_%.c bench/bench.h $(LIB)
	$(CC) $(CFLAGS_ALL) $< $(LIB) $(LDFLAGS_ALL) $(LIBS) -o $@

unit: $(DEPS) $(BIN) $(UNITBIN) $(REPLAY)

test: unit
	@BUILD=$(BUILD) sh tests/run.sh

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test

tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan OPT="-O1 -g" SAN="-fsanitize=thread" test

demo: all
	@sh scripts/demo.sh $(BIN)

bench: $(DEPS) $(BIN) $(BENCHBIN) $(LIVEBIN)
	@BUILD=$(BUILD) sh bench/run.sh

FUZZ_SECONDS ?= 60
fuzz: $(DEPS) $(UI_C)
	@mkdir -p build/fuzz
	@clang++ -std=c++17 -g -O1 -fsanitize=fuzzer-no-link,address,undefined -Iinclude -Isrc \
	  -c $(SRCXX) -o build/fuzz/ann_hnsw.o
	@for f in $(FUZZ); do n=$$(basename $$f .c); \
	  clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc $(LLAMA_CFLAGS) \
	    $$f $(SRC) $(UI_C) build/fuzz/ann_hnsw.o $(LIBS) -o build/fuzz/$$n || exit 1; \
	  mkdir -p build/fuzz/$$n.corpus; \
	  build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) build/fuzz/$$n.corpus tests/fuzz/corpus/$${n#fuzz_} || exit 1; \
	done

clean:
	rm -rf build
