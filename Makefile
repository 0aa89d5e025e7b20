# edge-agent. The targets only call scripts/, so CI and people run the same thing.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# internal/camjpeg's fast codec is libjpeg-turbo through cgo (Debian:
# libjpeg62-turbo-dev). A machine with a C compiler but without it builds the
# pure-Go codec instead (-tags nolibjpeg), so `make demo` and `make test` work
# on a fresh Debian with Go; without a C compiler Go turns cgo off by itself.
HAVE_CC      := $(shell command -v $${CC:-cc} >/dev/null 2>&1 && echo yes)
HAVE_LIBJPEG := $(shell printf '\043include <stdio.h>\n\043include <jpeglib.h>\n' | $${CC:-cc} -E -x c - >/dev/null 2>&1 && echo yes)
ifeq ($(HAVE_CC)$(HAVE_LIBJPEG),yes)
export GOFLAGS := $(strip $(shell $(GO) env GOFLAGS) -tags=nolibjpeg)
$(info libjpeg62-turbo-dev is not installed: building the pure-Go JPEG codec (apt-get install libjpeg62-turbo-dev for the fast one))
endif

.PHONY: build test demo cross test-arm64 test-arm test-board lint fuzz bench deb soak clean

build: ## the host binary in bin/
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/edge-agent ./cmd/edge-agent

test: ## vet, race tests, unit-file checks, sensors under qemu (what CI runs)
	scripts/test.sh

demo: build ## the agent against its built-in fake clouds with synthetic sensors
	bin/edge-agent demo

cross: ## Raspberry Pi binaries: pure-Go armv6/armv7/arm64, cgo arm64/armv7
	VERSION=$(VERSION) COMMIT=$(COMMIT) scripts/cross.sh

test-arm64: ## sensors/ unit tests under qemu-aarch64-static
	scripts/test-arm.sh arm64 ./sensors/...

test-arm: ## the whole unit suite under qemu for arm64, armv7 and armv6
	scripts/test-arm.sh arm64 $$(go list ./... | grep -v /e2e$$)
	scripts/test-arm.sh armv7 $$(go list ./... | grep -v /e2e$$)
	scripts/test-arm.sh armv6 $$(go list ./... | grep -v /e2e$$)

test-board: ## the board cases on Debian's kernel in qemu (ARCH=arm64|amd64, PKGS=, RUN=)
	scripts/vboard/run.sh ARCH=$(or $(ARCH),arm64) PKGS="$(PKGS)" RUN="$(RUN)"

lint: ## gofmt, vet, import direction
	scripts/lint.sh

fuzz: ## every fuzz target for FUZZTIME each (default 1m)
	FUZZTIME=$${FUZZTIME:-1m} scripts/fuzz.sh

deb: ## .deb packages for arm64 and armhf in dist/ (nfpm v2.45.2)
	VERSION=$(VERSION) scripts/deb.sh

soak: ## the fakes and the agent (two processes) for DURATION (default 1h): soak.csv, soak.png, soak-heap-diff.txt (not in CI)
	scripts/soak.sh

bench: ## the benchmarks quoted in docs/BENCHMARKS.md
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin dist build
