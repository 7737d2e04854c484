# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv on first use and install the project into it.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# NVIDIA's reference verifier and its genuine Hopper evidence, for the GPU attestation tests.
# Installed beside the venv, not into it: its top-level package is named ``verifier`` and
# would shadow chipreg's own; its pins (cryptography==43.0.1, ...) would downgrade ours.
NVREF   = $(VENV)/nv-local-gpu-verifier
NVREF_PKGS = nv-local-gpu-verifier==2.7.3 pyopenssl==26.4.0 ecdsa==0.19.2 six==1.17.0 asn1==3.3.0
ARGS   ?=

.PHONY: demo test lint typecheck check serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,load]'
	$(BIN)/pip install --quiet --no-deps --upgrade --target $(NVREF) $(NVREF_PKGS)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chipreg demo $(ARGS)

serve: $(STAMP)
	$(BIN)/chipreg serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite: lint, types, and pytest on SQLite and on a real PostgreSQL
# (scripts/with-postgres.sh starts a throwaway server when none is configured). It includes the
# OpenAPI contract run (schemathesis against a live registry, every role, a few minutes on 2
# cores: tests/registry/test_openapi_contract.py; CHIPREG_CONTRACT_EXAMPLES bounds it).
test: $(STAMP) lint typecheck
	scripts/with-postgres.sh $(BIN)/pytest $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache var
