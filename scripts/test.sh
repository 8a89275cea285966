#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: checks the toolchains, builds (or reuses) kube-apiserver,
# etcd, kubelet, kube-controller-manager, kube-scheduler, helm and promtool with Go, installs containerd and runc from
# Debian, then runs formatting, lints, unit and actor tests, the chart tests, and the end-to-end tests against a real
# local control plane, one of them with a real node. Usage: scripts/test.sh (as root, for the node).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/disk.sh
started=$SECONDS
step() { printf '\n==> %s\n' "$*"; }

# The real-node test creates network, PID and mount namespaces and runs containerd: it needs root. Checked first,
# before any long build.
[[ "$(id -u)" == 0 ]] || { echo "scripts/test.sh runs the real-node test, which needs root; run it as root" >&2; exit 1; }

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

step "containerd, runc and CNI plugins for the real-node tests, nftables for the vanished-server test (Debian packages, installed once)"
if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || ! command -v ctr >/dev/null ||
  [[ ! -x /usr/lib/cni/loopback ]] || ! command -v nsenter >/dev/null || ! command -v unshare >/dev/null ||
  ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
  packages=(containerd runc containernetworking-plugins util-linux iproute2 nftables)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"; }
fi
containerd --version

step "kubelet, kube-controller-manager, kube-scheduler and pause (built once with Go into ~/.cache/brokkr/node, or BROKKR_NODE_ASSETS)"
BROKKR_NODE_ASSETS="$(scripts/node-assets.sh)"
export BROKKR_NODE_ASSETS
echo "using $BROKKR_NODE_ASSETS"

step "disk space for the Rust build"
# The target folder cargo really uses (CARGO_TARGET_DIR or build.target-dir included), as an absolute path.
target_dir="$(cargo metadata --no-deps --format-version 1 --locked | grep -o '"target_directory":"[^"\\]*"' | cut -d'"' -f4 || true)"
[[ "$target_dir" == /* ]] || { echo "cannot read cargo's target directory from \`cargo metadata\` (a path with \" or \\?)" >&2; exit 1; }
# Measured: a cold test build writes 3.5 GiB under target/debug; what an earlier build left there counts.
require_space "the Rust test build" "$target_dir" 4096 "$target_dir/debug"
echo "enough disk for $target_dir"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit, actor and HTTP tests"
cargo test --workspace --locked --exclude brokkr-e2e

step "end-to-end tests against the local control plane (one at a time: each starts its own API server)"
# One build for both binaries the end-to-end tests run (the broker, and the example that embeds the subsystem), so
# that their shared dependencies are built once, with one set of features.
cargo build --locked -p brokkr-broker -p brokkr-reload --bin brokkr-broker --bin kubectl-brokkr --example embedded
# The binaries just built; without these the harness builds them itself (same profile), which costs a relink.
export BROKKR_BROKER_BIN="$target_dir/debug/brokkr-broker"
export BROKKR_EMBEDDED_BIN="$target_dir/debug/examples/embedded"
export BROKKR_PLUGIN_BIN="$target_dir/debug/kubectl-brokkr"
cargo test -p brokkr-e2e --locked --no-run
# The 410 test spends 240–340 s waiting for its watch to end (the API server's timeout): it runs beside the others,
# from the binary just built, in the package's folder as cargo runs it; its output follows theirs.
gone_bin="$(cargo test -p brokkr-e2e --locked --no-run --test gone --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*/gone-[^"]*"' | cut -d'"' -f4 | head -n 1)"
[[ -x "$gone_bin" ]] || { echo "cannot find the built 410 test (cargo test --no-run --test gone)" >&2; exit 1; }
gone_log="$(mktemp)"
(cd tests && exec "$gone_bin" --test-threads=1 --nocapture) >"$gone_log" 2>&1 &
gone_pid=$!
trap 'kill "$gone_pid" 2>/dev/null || true' EXIT
others=()
while read -r name; do
  [[ "$name" == gone ]] || others+=(--test "$name")
done < <(grep -A1 '^\[\[test\]\]' tests/Cargo.toml | sed -n 's/^name = "\(.*\)"$/\1/p')
cargo test -p brokkr-e2e --locked "${others[@]}" -- --test-threads=1 --nocapture
echo "--- the 410 test, run beside the others:"
gone_status=0
wait "$gone_pid" || gone_status=$?
trap - EXIT
cat "$gone_log"
rm -f "$gone_log"
[[ "$gone_status" == 0 ]] || { echo "the 410 test failed" >&2; exit 1; }

step "all tests passed in $((SECONDS - started)) s"
