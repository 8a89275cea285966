#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: checks the toolchains, builds (or reuses) kube-apiserver,
# etcd, kubelet, kube-controller-manager, kube-scheduler, helm and promtool with Go (and kube-apiserver of the oldest
# supported minor), installs containerd, runc and the CNI plugins from Debian, then runs formatting, lints, unit and
# actor tests, the chart tests, the end-to-end tests against a real local control plane (two of them on a real node,
# one with a pod network), and a smoke subset on the oldest minor. Usage: scripts/test.sh (as root, for the node).
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

# The oldest minor the chart supports (Chart.yaml's kubeVersion): a smoke subset of the end-to-end tests runs on it.
OLDEST_KUBERNETES="v1.30.14"
step "kube-apiserver, kubectl and etcd of Kubernetes $OLDEST_KUBERNETES, the oldest the chart supports (built once, or BROKKR_OLDEST_ASSETS)"
oldest_assets="$(KUBEBUILDER_ASSETS="${BROKKR_OLDEST_ASSETS:-}" BROKKR_KUBERNETES_VERSION="$OLDEST_KUBERNETES" scripts/control-plane-assets.sh)"
echo "using $oldest_assets"

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

step "end-to-end tests against the local control plane (one at a time, but for two that mostly wait: each starts its own API server)"
# One build for both binaries the end-to-end tests run (the broker, and the example that embeds the subsystem), so
# that their shared dependencies are built once, with one set of features.
cargo build --locked -p brokkr-broker -p brokkr-reload --bin brokkr-broker --bin kubectl-brokkr --example embedded
# The binaries just built; without these the harness builds them itself (same profile), which costs a relink.
export BROKKR_BROKER_BIN="$target_dir/debug/brokkr-broker"
export BROKKR_EMBEDDED_BIN="$target_dir/debug/examples/embedded"
export BROKKR_PLUGIN_BIN="$target_dir/debug/kubectl-brokkr"
cargo test -p brokkr-e2e --locked --no-run
# Two tests spend most of their time waiting for a watch to end (the API server's timeout, 240–340 s): the 410 test
# and the HTTP/1.1 frozen-proxy test. They run beside the others, from the binaries just built, in the package's
# folder as cargo runs them; their output follows the others'.
test_binary() {
  cargo test -p brokkr-e2e --locked --no-run --test "$1" --message-format=json 2>/dev/null |
    grep -o "\"executable\":\"[^\"]*/$1-[^\"]*\"" | cut -d'"' -f4 | head -n 1
}
frozen_test=over_http1_a_vanished_server_is_noticed_in_45_s_and_a_frozen_proxy_within_the_watch_timeout
background=(gone "faults $frozen_test")
pids=()
logs=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for job in "${background[@]}"; do
  read -r name filter <<<"$job"
  bin="$(test_binary "$name" || true)"
  [[ -x "$bin" ]] || { echo "cannot find the built test $name (cargo test --no-run --test $name)" >&2; exit 1; }
  log="$(mktemp)"
  if [[ -n "$filter" ]]; then
    (cd tests && exec "$bin" --exact "$filter" --test-threads=1 --nocapture) >"$log" 2>&1 &
  else
    (cd tests && exec "$bin" --test-threads=1 --nocapture) >"$log" 2>&1 &
  fi
  pids+=($!)
  logs+=("$log")
done
others=()
while read -r name; do
  [[ "$name" == gone ]] || others+=(--test "$name")
done < <(grep -A1 '^\[\[test\]\]' tests/Cargo.toml | sed -n 's/^name = "\(.*\)"$/\1/p')
foreground=0
cargo test -p brokkr-e2e --locked "${others[@]}" -- --test-threads=1 --nocapture --skip "$frozen_test" || foreground=$?
# Whatever the others did, each background run is waited for and shown; one that ran no test (a renamed filter)
# counts as failed.
failed=()
for i in "${!background[@]}"; do
  echo "--- run beside the others: ${background[$i]}"
  status=0
  wait "${pids[$i]}" || status=$?
  cat "${logs[$i]}"
  grep -Eq '^test result: ok\. [1-9][0-9]* passed' "${logs[$i]}" || status=1
  rm -f "${logs[$i]}"
  [[ "$status" == 0 ]] || failed+=("${background[$i]}")
done
trap - EXIT
[[ "$foreground" == 0 ]] || { echo "the end-to-end tests failed" >&2; exit 1; }
[[ ${#failed[@]} == 0 ]] || { echo "failed beside the others: ${failed[*]}" >&2; exit 1; }

step "a smoke subset on the oldest Kubernetes the chart supports ($OLDEST_KUBERNETES: install, live edit, webhook denial, rollout status, staged rollout)"
"$oldest_assets/kube-apiserver" --version | grep -qx "Kubernetes $OLDEST_KUBERNETES" ||
  { echo "$oldest_assets/kube-apiserver is not $OLDEST_KUBERNETES" >&2; exit 1; }
KUBEBUILDER_ASSETS="$oldest_assets" cargo test -p brokkr-e2e --locked \
  --test chart_install --test webhook --test rollout --test staged_rollout -- --test-threads=1 --nocapture

step "all tests passed in $((SECONDS - started)) s"
