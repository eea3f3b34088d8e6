#!/usr/bin/env bash
# The whole test suite, as CI runs it: fetch the pinned assets (idempotent), check formatting
# and lints, then run every test in release mode (tests that need the real model or the
# llama.cpp vocabularies fail loudly if the fetch did not happen).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-assets.sh
cargo fmt --all -- --check
# Profile `ci`: release optimisation without LTO (see Cargo.toml).
cargo clippy --profile ci --workspace --all-targets -- -D warnings
cargo test --profile ci --workspace
# The server against the official `openai` Python client (pinned, hash-checked venv under
# $ANLLM_HOME/peers/openai-venv) on the fetched default model.
cargo build --profile ci -p anllm-cli
tests/serve/openai_client.sh target/ci/anllm
