# Everyday commands. `make demo` and `make test` work on a fresh machine with Rust and Python 3:
# `make setup` installs everything else they need into the project (idempotent).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV         ?= .venv
MOTO_VERSION := 5.2.5
# The real AWS CLI runs the runner boot scripts against moto in the tests; parliament lints the
# IAM policies the Terraform apply test creates.
AWSCLI_VERSION := 1.46.3
PARLIAMENT_VERSION := 1.6.4
TOOLS_VENV   ?= .venv-tools
CARGO_LAMBDA_VERSION := 1.9.2
FUNCTIONS    := webhook dispatcher scale-up scale-down syncer pool warm-pool job-retry ssm-housekeeper ami-housekeeper termination-watcher redelivery

# Reuse compiled dependencies across clones on this machine (CI does the same).
ifneq ($(shell command -v sccache 2>/dev/null),)
export RUSTC_WRAPPER ?= sccache
export CARGO_INCREMENTAL ?= 0
export SCCACHE_DIR ?= $(HOME)/.cache/sccache
endif

.PHONY: help setup test lint fmt build demo bench bench-webhook bench-dispatcher bench-scale-up bench-pool bench-redelivery bench-scale-down bench-syncer tf-check tf-apply-test tf-docs deploy clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

SETUP_STAMP := $(VENV)/.moto-$(MOTO_VERSION)-awscli-$(AWSCLI_VERSION)-parliament-$(PARLIAMENT_VERSION)

setup: $(SETUP_STAMP) ## Install what the tests need (moto server, the AWS CLI and parliament in a project virtualenv)

$(SETUP_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)' 'awscli==$(AWSCLI_VERSION)' 'parliament==$(PARLIAMENT_VERSION)'
	touch $@

test: setup ## Run every test (unit, end to end against moto and the fake GitHub)
	cargo test --workspace

lint: ## Formatting and clippy, warnings are errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	cargo fmt --all

DEMO_ARGS ?=
demo: setup ## Run the whole system locally against moto and a fake GitHub (DEMO_ARGS="--jobs 100 --ephemeral")
	cargo build -p tests --bin demo
	target/debug/demo $(DEMO_ARGS)

bench: bench-webhook bench-dispatcher bench-scale-up bench-pool bench-redelivery bench-scale-down bench-syncer ## Run the benchmarks (release builds: slow the first time)

bench-webhook: setup ## Webhook cold start, per-event CPU and memory, EventBridge and direct mode
	cargo bench -p tests --bench webhook

bench-dispatcher: setup ## Dispatcher (EventBridge mode) cold start, per-event CPU and memory
	cargo bench -p tests --bench dispatcher

bench-scale-up: setup ## Scale-up API calls per runner and 1,000 jobs through SQS
	cargo bench -p tests --bench scale_up

bench-pool: setup ## Pool: 100 runners topped up from empty, calls per runner and wall time
	cargo bench -p tests --bench pool

bench-redelivery: setup ## Redelivery: 50 jobs queued during a 20 s endpoint outage, calls per recovered job, recovery time
	cargo bench -p tests --bench redelivery

bench-scale-down: setup ## Scale-down: one run over 1,000 runners (900 idle), calls and wall time
	cargo bench -p tests --bench scale_down

bench-syncer: setup ## Syncer: a 200 MB runner tarball to S3, wall time and peak RSS
	cargo bench -p tests --bench syncer

tf-check: ## Terraform checks offline: fmt, validate, terraform test, checkov, shellcheck
	.ci/terraform-check.sh

EXAMPLES ?=
UPSTREAM_EXAMPLES ?=
tf-apply-test: setup ## Apply every example (ours, and upstream's unchanged) against moto: re-plan clean, IAM lint, dashboard, a job end to end, destroy (EXAMPLES=default UPSTREAM_EXAMPLES=prebuilt to pick)
	TF_APPLY_EXAMPLES="$(EXAMPLES)" TF_APPLY_UPSTREAM_EXAMPLES="$(UPSTREAM_EXAMPLES)" cargo test -p tests --test e2e -- --nocapture deploy::

tf-docs: ## Rewrite the inputs/outputs tables of the Terraform READMEs
	UPDATE_TF_DOCS=1 cargo test -p tests --test e2e -- terraform::module_readmes_document_every_input_and_output

EXAMPLE ?= default
deploy: ## Deploy terraform/examples/$(EXAMPLE) (after `make build`; needs AWS credentials and terraform.tfvars)
	terraform -chdir=terraform/examples/$(EXAMPLE) init
	terraform -chdir=terraform/examples/$(EXAMPLE) apply

$(TOOLS_VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION):
	python3 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check 'cargo-lambda==$(CARGO_LAMBDA_VERSION)'
	touch $@

build: $(TOOLS_VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION) ## Release Lambda zips: target/lambda/<arch>/<function>/bootstrap.zip
	PATH="$(abspath $(TOOLS_VENV))/bin:$$PATH" cargo lambda build --release --x86-64 --output-format zip \
	  --lambda-dir target/lambda/x86_64 $(addprefix -p ,$(FUNCTIONS))
	@if rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu \
	    || rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then \
	  PATH="$(abspath $(TOOLS_VENV))/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip \
	    --lambda-dir target/lambda/arm64 $(addprefix -p ,$(FUNCTIONS)); \
	else \
	  echo "arm64 zips NOT built: the aarch64-unknown-linux-gnu Rust target cannot be added on this machine"; \
	  echo "(run 'rustup target add aarch64-unknown-linux-gnu' where rustup can download, or deploy with lambda_architecture = \"x86_64\")"; \
	fi
	@ls -l target/lambda/*/*/bootstrap.zip

clean: ## Remove build outputs and virtualenvs
	cargo clean
	rm -rf $(VENV) $(TOOLS_VENV)
