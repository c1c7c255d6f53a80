# scaivault-run: build, test, benchmark.
GO        ?= go
BIN       ?= bin/scaivault-run
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
# urfave_cli_no_docs leaves out urfave/cli's man page and Markdown
# generators (and blackfriday, whose tables were built at every start):
# nothing here uses them (BENCHMARKS.md, "What users pay").
TAGS      := urfave_cli_no_docs
FUZZTIME  ?= 30s

export CGO_ENABLED = 0

.PHONY: build test bench bench-startup fuzz lint cross clean

build:
	$(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) .

# The README's test command. -race needs cgo, so it is switched on here only.
test:
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 30m ./...

# What scaivault-run costs a command against the command started
# directly: added start-up and the supervisor's VmRSS, RssAnon and PSS.
bench-startup: build
	$(GO) run ./bench/startup -bin $(BIN)

# Every Fuzz target of every package, one after the other, each for
# FUZZTIME (make fuzz FUZZTIME=2m); fails if any fails. A crasher is kept
# in the package's testdata/fuzz/ and becomes a seed of the plain tests.
fuzz:
	@fail=0; for pkg in $$($(GO) list ./...); do \
		names=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "$$names"; exit 1; }; \
		for name in $$(echo "$$names" | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || fail=1; \
		done; \
	done; exit $$fail

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

cross:
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "build $$os/$$arch"; \
		GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o bin/scaivault-run-$$os-$$arch . ; \
	done

clean:
	rm -rf bin
