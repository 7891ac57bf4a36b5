# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit bench clean help promtool browser ngircd soak wasm-toolchain docs

help:
	@echo "make run    - create .venv, install, start the host on ./plugins, reloading on save (Ctrl-C to stop)"
	@echo "make test   - create .venv, install, run ruff, mypy --strict and the test suite"
	@echo "make docs   - build the documentation site into site/ (offline; open site/index.html)"
	@echo "make bench  - run the benchmarks, each figure beside its anchor"
	@echo "make soak   - inject faults into a running host while callers write (SOAK_SECONDS=240)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,wasm,wasm-python,ray]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/plugbay run --plugins plugins --watch

lint: $(STAMP)
	$(BIN)/ruff check src tests bench plugins
	$(BIN)/ruff format --check src tests bench plugins
	$(BIN)/lint-imports

# Each bundled plugin is a package of its own (relative imports), checked from its parent.
typecheck: $(STAMP)
	$(BIN)/mypy
	@set -e; for d in plugins/*/*/; do \
	  (cd "$$(dirname $$d)" && $(CURDIR)/$(BIN)/mypy --strict --explicit-package-bases \
	    --no-error-summary "$$(basename $$d)/") || exit 1; \
	done; echo "plugins: mypy --strict clean"

# The dashboard's browser test drives Debian's chromium (playwright, no browser download).
# Installed once when missing; with CI=true and no input as well.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@echo "installing Debian's chromium for the dashboard's browser test"
	@SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium fonts-dejavu-core >/dev/null
browser: $(CHROMIUM)

# The IRC plugin's tests run a real IRC server: Debian's ngircd, installed once when missing
# (the tests start their own, on a free port of 127.0.0.1; the package's service stays off).
NGIRCD := /usr/sbin/ngircd
$(NGIRCD):
	@echo "installing Debian's ngircd for the IRC plugin's tests"
	@SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    ngircd >/dev/null
ngircd: $(NGIRCD)

# Debian's prometheus package: promtool checks our /metrics output and the shipped rules,
# and the prometheus server scrapes a running host in the tests. Installed once,
# without questions; skipped when both are already there.
promtool:
	@{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus package (promtool and the prometheus server)"; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold prometheus >/dev/null; }

# Wasm plugins in C (docs/wasm-plugins.md): Debian's clang, lld and wasi-libc compile them to
# wasm32-wasi ('plugbay build'). Installed once when missing, as chromium is, without questions.
WASI_CLANG := /usr/bin/clang
WASI_LIBC := /usr/include/wasm32-wasi/stdlib.h
wasm-toolchain:
	@{ [ -x $(WASI_CLANG) ] && [ -f $(WASI_LIBC) ] && command -v wasm-ld >/dev/null && \
	   ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; } || { \
	  echo "installing Debian's clang, lld and wasi-libc for the Wasm plugins in C"; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    clang lld wasi-libc libclang-rt-dev-wasm32 >/dev/null; }

# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
unit: $(STAMP) promtool browser ngircd wasm-toolchain
	@$(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

test: lint typecheck unit

# The HTTP benchmark's load generator (bench/http.py): Debian's wrk, installed once when missing.
WRK := /usr/bin/wrk
$(WRK):
	@SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null

bench: $(STAMP) $(WRK) $(NGIRCD) wasm-toolchain
	$(BIN)/python -m bench

# The manifest reference is generated from the manifest model, then mkdocs builds site/
# from docs/ with its default theme; nothing is fetched (tests/test_docs.py checks both).
docs: $(STAMP)
	$(BIN)/python -m plugbay.pdk.manifest_reference > docs/manifest.md
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) site .plugbay .mypy_cache .ruff_cache .pytest_cache .hypothesis bench/.work

# Fault injection against a real `plugbay run` (bench/soak.py): SOAK_SECONDS (default 240, ≤ 600).
# Mounts a small tmpfs for the state directory when it can (root), and unmounts it after.
soak: $(STAMP)
	$(BIN)/python -m bench.soak
