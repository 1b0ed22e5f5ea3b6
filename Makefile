# fusillade: `make run` starts the whole stack locally, `make test` runs every test.
# Both install what is missing (the PostgreSQL server; for test also Chromium) through the system
# package manager.

GO        ?= go
FUNCTIONS := api populate dispatch worker purge migrate
LDFLAGS   := -s -w
PG_BIN    := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) $(shell command -v initdb 2>/dev/null))
CHROMIUM  := $(shell command -v chromium 2>/dev/null)

.PHONY: run test vet lint sqlc sqlc-check deps chromium build clean bench $(addprefix build-,$(FUNCTIONS))

# apt_install installs Debian packages quietly, through sudo unless already root.
apt_install = if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(1) >/dev/null

## deps: install the PostgreSQL server binaries when they are missing (Debian/Ubuntu).
deps:
ifeq ($(PG_BIN),)
	@echo "installing PostgreSQL server (initdb not found)"
	@$(call apt_install,postgresql)
endif

## chromium: install Debian's Chromium when it is missing; the dashboard's browser test
## (local/stack TestDashboardInABrowser) drives it headless, and fails without it.
chromium:
ifeq ($(CHROMIUM),)
	@echo "installing Chromium (chromium not found)"
	@$(call apt_install,chromium)
endif

## run: the whole stack on 127.0.0.1:8080 with a bundled example batch.
run: deps
	$(GO) run ./cmd/fusillade run $(ARGS)

## vet: static checks.
vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

## lint: golangci-lint with .golangci.yml, pinned and built into bin/ with go install on first use.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT         := bin/golangci-lint-$(GOLANGCI_LINT_VERSION)
$(GOLANGCI_LINT):
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv bin/golangci-lint $@
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run --timeout 5m ./...

## sqlc: regenerate the PostgreSQL query layer (shared/postgres/internal/pgq) from sqlc.yaml: the
## migrations are the schema, shared/postgres/queries*.sql the queries. sqlc is pinned and built
## into bin/ with go install on first use, like golangci-lint. CGO_ENABLED=0 builds it with its
## WebAssembly copy of the PostgreSQL parser: no C compiler needed, and no slower to build.
SQLC_VERSION := v1.31.1
SQLC         := bin/sqlc-$(SQLC_VERSION)
$(SQLC):
	@mkdir -p bin
	CGO_ENABLED=0 GOBIN=$(CURDIR)/bin $(GO) install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION)
	mv bin/sqlc $@
sqlc: $(SQLC)
	$(SQLC) generate

## sqlc-check: fails when the checked-in generated code is not what the .sql files generate
## (a query edited without `make sqlc`); part of test.
sqlc-check: $(SQLC)
	@$(SQLC) diff || { echo "generated query code is stale: run make sqlc and commit the result"; exit 1; }

## test: sqlc-check, vet and lint, then every Go test with the race detector against one throwaway
## PostgreSQL (the dashboard's in Chromium among them).
test: deps chromium sqlc-check vet lint
	$(GO) run ./cmd/fusillade with-postgres -- $(GO) test -race -count=1 -timeout 20m ./...

## bench: the performance workloads of docs/benchmarks.md against a throwaway PostgreSQL that the
## bench starts itself (durable unless ARGS=-fsync=false, pg_stat_statements preloaded); not part
## of test. `make bench ARGS=-quick` is the few-minute version; the JSON report goes to BENCH_JSON.
BENCH_JSON ?= build/bench-report.json
bench: deps
	@mkdir -p $(dir $(BENCH_JSON))
	env -u DATABASE_URL $(GO) run ./cmd/bench -json $(BENCH_JSON) $(ARGS)

## build: linux/arm64 bootstraps for every function under build/<function>/bootstrap.
build: $(addprefix build/,$(addsuffix /bootstrap,$(FUNCTIONS)))

build/%/bootstrap: FORCE
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='$(LDFLAGS)' -o $@ ./functions/$*

.PHONY: FORCE
FORCE:

# Targets called by `sam build` (BuildMethod: makefile); SAM sets ARTIFACTS_DIR.
build-ApiFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='$(LDFLAGS)' -o $(ARTIFACTS_DIR)/bootstrap ./functions/api
build-PopulateFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='$(LDFLAGS)' -o $(ARTIFACTS_DIR)/bootstrap ./functions/populate
build-DispatchFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='$(LDFLAGS)' -o $(ARTIFACTS_DIR)/bootstrap ./functions/dispatch
build-WorkerFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='$(LDFLAGS)' -o $(ARTIFACTS_DIR)/bootstrap ./functions/worker
build-PurgeFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='$(LDFLAGS)' -o $(ARTIFACTS_DIR)/bootstrap ./functions/purge
build-MigrateFunction:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='$(LDFLAGS)' -o $(ARTIFACTS_DIR)/bootstrap ./functions/migrate

clean:
	rm -rf build .data
