#!/usr/bin/env bash
# Provides kube-apiserver, etcd and kubectl for the end-to-end tests and prints the folder that holds them.
#
# - If KUBEBUILDER_ASSETS names a folder holding kube-apiserver and etcd (setup-envtest users), that folder is used.
# - Otherwise they are built with Go from the module proxy into a versioned cache outside the clone
#   (${XDG_CACHE_HOME:-~/.cache}/brokkr/control-plane/<versions>/bin), so later runs and fresh clones reuse them.
#
# Only the folder is printed on stdout; progress goes to stderr.
set -euo pipefail

KUBERNETES_VERSION="${BROKKR_KUBERNETES_VERSION:-v1.37.2}"
ETCD_VERSION="${BROKKR_ETCD_VERSION:-v3.6.16}"

log() { printf 'control-plane-assets: %s\n' "$*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if [[ -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    printf '%s\n' "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks kube-apiserver or etcd; building our own"
fi

command -v go >/dev/null || { log "go is not installed; install Go 1.26 or newer"; exit 1; }

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/brokkr/control-plane"
dest="$cache_root/kubernetes-$KUBERNETES_VERSION-etcd-$ETCD_VERSION"
bin="$dest/bin"
if [[ -x "$bin/kube-apiserver" && -x "$bin/etcd" && -x "$bin/kubectl" ]]; then
  log "cached: $bin"
  printf '%s\n' "$bin"
  exit 0
fi

# Measured: 9.1 GiB of Go module and build caches after this build and chart-tools.sh's on an empty machine.
source "$(dirname "$0")/disk.sh"
require_space "the Go build of kube-apiserver, kubectl and etcd" "$(go env GOCACHE)" 9500 "$(go env GOCACHE)" "$(go env GOMODCACHE)"
mkdir -p "$bin"
work="$(mktemp -d "$cache_root/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
started=$SECONDS

# kube-apiserver and kubectl, through the wrapper module of kubernetes-module.sh.
source "$(dirname "$0")/kubernetes-module.sh"
write_kubernetes_module "$work/kubernetes" brokkr.local/kubernetes-build "$KUBERNETES_VERSION"
(
  cd "$work/kubernetes"
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBERNETES_VERSION" "k8s.io/kubernetes/cmd/kubectl@$KUBERNETES_VERSION"
  CGO_ENABLED=0 go build -trimpath -ldflags "$version_flags" -o "$bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
)

# etcd 3.6: Debian's etcd 3.4 is too old for current kube-apiserver.
mkdir -p "$work/etcd"
printf 'module brokkr.local/etcd-build\n\ngo %s\n' "$go_directive" >"$work/etcd/go.mod"
log "etcd $ETCD_VERSION"
(
  cd "$work/etcd"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
)

log "built in $((SECONDS - started)) s into $bin"
printf '%s\n' "$bin"
