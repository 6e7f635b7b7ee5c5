# Herald front door. `make` builds, `make run` starts the server with the
# embedded default on 127.0.0.1:8080 (and the admin UI at /admin/), `make test`
# runs every test.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
LISTEN     ?= 127.0.0.1:8080
FUZZ_SECONDS ?= 20
CMAKE_FLAGS ?=
# What the demos in examples/ need beyond the embedded default (which allows
# anonymous subscribe, presence and history, but no client publish): the
# browsers publish themselves (chat:*, typing:*, scores:*, and prices.* and
# metrics.demo outside a namespace), so client publish for anyone everywhere
# (herald logs a "permissive configuration" warning for it); join/leave pushes
# in chat:* rooms, and no history for typing:* (ephemeral typing indicators).
# The pages are served by herald itself (--static), so their WebSockets and
# streams are same-origin and need no allowed_origins; examples/sdk is a link
# to clients/js/src, outside the static root, hence static_follow_symlinks.
# tests/integration/test_sdk_browser.mjs starts herald with the same flags.
DEMO_FLAGS ?= --channels.publish anyone --server.static-follow-symlinks true --namespace.chat.join-leave true --namespace.typing.history-size 0

APT_BUILD = build-essential cmake ninja-build pkg-config libssl-dev zlib1g-dev libcmocka-dev libjansson-dev libmsgpack-dev libcurl4-openssl-dev libnghttp2-dev
APT_TEST  = clang libclang-rt-14-dev python3 python3-websockets python3-msgpack chromium curl redis-server prometheus nghttp2-client

.PHONY: all build run run-backend cluster test test-unit test-asan fuzz fuzz-build deps deps-test clean

all: build

deps:
	@scripts/ensure-deps.sh $(APT_BUILD)

deps-test: deps
	@scripts/ensure-deps.sh $(APT_TEST)
	@scripts/ensure-node-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD)

# --admin: the admin UI at /admin/; herald prints its URL and a generated
# password at start-up (set HERALD_ADMIN_PASSWORD to choose one).
run: build
	$(BUILD)/herald serve --listen $(LISTEN) --static examples $(DEMO_FLAGS) --admin

# The chat demo with the example backend in the loop (examples/backend/: login
# by cookie, messages stored and rewritten by the publish hook, history by RPC,
# webhooks logged): herald on LISTEN, the backend on BACKEND_LISTEN, Ctrl-C
# stops both. The hook flags are in scripts/run-backend.sh (BACKEND_FLAGS).
BACKEND_LISTEN ?= 127.0.0.1:8090
run-backend: build
	HERALD_BIN=$(BUILD)/herald LISTEN=$(LISTEN) BACKEND_LISTEN=$(BACKEND_LISTEN) DEMO_FLAGS="$(DEMO_FLAGS)" scripts/run-backend.sh

# Three nodes sharing one local redis-server (the Redis engine: docs/scaling.md).
cluster: build
	@scripts/ensure-deps.sh redis-server
	BUILD=$(BUILD) DEMO_FLAGS="$(DEMO_FLAGS)" scripts/cluster.sh

$(BUILD_ASAN)/build.ninja:
	CC=clang cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DHERALD_SANITIZE=ON

$(BUILD_FUZZ)/build.ninja:
	CC=clang CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  cmake -S . -B $(BUILD_FUZZ) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_FUZZ=ON -DHERALD_TESTS=OFF

fuzz-build: deps-test $(BUILD_FUZZ)/build.ninja
	cmake --build $(BUILD_FUZZ)

# Unit + integration tests on the optimised gcc build.
test-unit: deps-test build
	cd $(BUILD) && ctest --output-on-failure

# The same tests on a clang ASan + UBSan build.
test-asan: deps-test $(BUILD_ASAN)/build.ninja
	cmake --build $(BUILD_ASAN)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure

# Every fuzz target (ASan + UBSan; undefined behaviour aborts, as in test-asan) for FUZZ_SECONDS each (20 s in `make test`, longer with `make fuzz`),
# FUZZ_JOBS at a time (default: the number of CPUs).
fuzz-run: fuzz-build
	@scripts/run-fuzzers.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

fuzz:
	$(MAKE) fuzz-run FUZZ_SECONDS=$${FUZZ_SECONDS:-600}

# Every suite runs even when an earlier one failed (like make -k); the failing
# ones are named at the end and the exit status is non-zero if any failed.
TEST_SUITES = fuzz-run test-unit test-asan
test:
	@failed=""; \
	for suite in $(TEST_SUITES); do \
	  $(MAKE) --no-print-directory $$suite || failed="$$failed $$suite"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: all suites passed"

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)

# Side-by-side benchmarks (bench/compare.sh; docs/benchmarks.md): every scenario
# against Herald, nchan and a Node ws server, 8-15 minutes. Subset with
# make bench SCENARIOS="fanout chat" SERVERS="herald nchan".
.PHONY: bench
bench: build
	HERALD_BIN=$(BUILD)/herald bench/compare.sh
