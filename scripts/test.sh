#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: checks the toolchains, builds (or reuses) kube-apiserver,
# etcd, helm and promtool with Go, then runs formatting, lints, unit and actor tests, the chart tests, and the
# end-to-end tests against a real local control plane. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n==> %s\n' "$*"; }

step "toolchains"
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }
command -v go >/dev/null || { echo "go not found: install Go 1.26 or newer (https://go.dev/dl)"; exit 1; }
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
cargo --version
go version

step "kube-apiserver and etcd (built once with Go into ~/.cache/brokkr, or KUBEBUILDER_ASSETS)"
KUBEBUILDER_ASSETS="$(scripts/control-plane-assets.sh)"
export KUBEBUILDER_ASSETS
echo "using $KUBEBUILDER_ASSETS"

step "helm and promtool for the chart tests (built once with Go into ~/.cache/brokkr/tools, or BROKKR_HELM/BROKKR_PROMTOOL)"
echo "using $(scripts/chart-tools.sh)"

step "disk space for the Rust build"
# A cold test build writes about 3.5 GB under target/. On a nearly full disk the linker dies with SIGBUS
# instead of saying so, so check first; a warm target/ only grows a little and is not checked.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
if [[ ! -d "$target_dir/debug" ]]; then
  need_kb=$((4 * 1024 * 1024))
  probe="$target_dir"
  while [[ ! -e "$probe" ]]; do probe="$(dirname "$probe")"; done
  avail_kb="$(df -Pk "$probe" | awk 'NR == 2 { print $4 }')"
  if (( avail_kb < need_kb )); then
    echo "only $((avail_kb / 1024)) MiB free for $target_dir; a cold build needs about 4 GiB: free some space or set CARGO_TARGET_DIR"
    exit 1
  fi
  echo "$((avail_kb / 1024)) MiB free for $target_dir"
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit, actor and HTTP tests"
cargo test --workspace --locked --exclude brokkr-e2e

step "end-to-end tests against the local control plane (one at a time: each starts its own API server)"
cargo build -p brokkr-broker --locked
# The binary just built; without this the harness builds it itself (same profile), which costs a relink.
export BROKKR_BROKER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/brokkr-broker"
cargo test -p brokkr-e2e --locked -- --test-threads=1 --nocapture

step "all tests passed in $((SECONDS - started)) s"
