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

# kube-apiserver and kubectl: k8s.io/kubernetes replaces its staging modules with ./staging paths, which
# `go install pkg@version` refuses. A wrapper module replaces each with its published v0.Y.Z instead; the list is
# generated from the chosen release's own go.mod so it never drifts.
staging_version="v0.${KUBERNETES_VERSION#v1.}"
gomod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[[ -f "$gomod" ]] || { log "could not download k8s.io/kubernetes@$KUBERNETES_VERSION"; exit 1; }
go_directive="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
mkdir -p "$work/kubernetes"
{
  printf 'module brokkr.local/kubernetes-build\n\ngo %s\n\nreplace (\n' "$go_directive"
  awk '/^replace \(/{inside=1; next} inside && /^\)/{inside=0} inside && /=> \.\/staging/{print $1}' "$gomod" |
    while read -r module; do printf '\t%s => %s %s\n' "$module" "$module" "$staging_version"; done
  printf ')\n'
} >"$work/kubernetes/go.mod"
log "kube-apiserver and kubectl $KUBERNETES_VERSION ($(grep -c ' => ' "$work/kubernetes/go.mod") staging modules at $staging_version)"
version_flags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
version_flags+=" -X k8s.io/component-base/version.gitMajor=1"
version_flags+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"
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
