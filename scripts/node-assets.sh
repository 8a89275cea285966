#!/usr/bin/env bash
# Provides what a real node in the tests needs from Kubernetes, and prints the folder that holds it: kubelet,
# kube-controller-manager, kube-scheduler (built with Go from the module proxy, like control-plane-assets.sh builds
# kube-apiserver) and `pause`, the pod sandbox's process (a static Go program, so its image needs no base).
#
# - If BROKKR_NODE_ASSETS names a folder holding all four, that folder is used.
# - Otherwise they are built once into ${XDG_CACHE_HOME:-~/.cache}/brokkr/node/<version>/bin.
#
# containerd and runc come from Debian (`apt-get install containerd runc containernetworking-plugins`); scripts/test.sh
# installs them. Only the folder is printed on stdout; progress goes to stderr.
set -euo pipefail

KUBERNETES_VERSION="${BROKKR_KUBERNETES_VERSION:-v1.37.2}"
BINARIES=(kubelet kube-controller-manager kube-scheduler pause)

log() { printf 'node-assets: %s\n' "$*" >&2; }
has_all() { local b; for b in "${BINARIES[@]}"; do [[ -x "$1/$b" ]] || return 1; done; }

if [[ -n "${BROKKR_NODE_ASSETS:-}" ]]; then
  if has_all "$BROKKR_NODE_ASSETS"; then
    log "using BROKKR_NODE_ASSETS=$BROKKR_NODE_ASSETS"
    printf '%s\n' "$BROKKR_NODE_ASSETS"
    exit 0
  fi
  log "BROKKR_NODE_ASSETS=$BROKKR_NODE_ASSETS lacks one of ${BINARIES[*]}; building our own"
fi

command -v go >/dev/null || { log "go is not installed; install Go 1.26 or newer"; exit 1; }

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/brokkr/node"
bin="$cache_root/kubernetes-$KUBERNETES_VERSION/bin"
if has_all "$bin"; then
  log "cached: $bin"
  printf '%s\n' "$bin"
  exit 0
fi

# Measured: about 1.5 GiB more of Go build cache on top of control-plane-assets.sh's.
source "$(dirname "$0")/disk.sh"
require_space "the Go build of kubelet, kube-controller-manager and kube-scheduler" "$(go env GOCACHE)" 3000 \
  "$(go env GOCACHE)" "$(go env GOMODCACHE)"
mkdir -p "$bin"
work="$(mktemp -d "$cache_root/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
started=$SECONDS

# Through the wrapper module of kubernetes-module.sh, as control-plane-assets.sh builds kube-apiserver.
source "$(dirname "$0")/kubernetes-module.sh"
write_kubernetes_module "$work/kubernetes" brokkr.local/kubernetes-node-build "$KUBERNETES_VERSION"
log "kubelet, kube-controller-manager and kube-scheduler $KUBERNETES_VERSION"
(
  cd "$work/kubernetes"
  go get "k8s.io/kubernetes/cmd/kubelet@$KUBERNETES_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@$KUBERNETES_VERSION" \
    "k8s.io/kubernetes/cmd/kube-scheduler@$KUBERNETES_VERSION"
  CGO_ENABLED=0 go build -trimpath -ldflags "$version_flags" -o "$bin/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
)

# pause: what Kubernetes' own pause does that a hostNetwork sandbox needs (wait for SIGTERM or SIGINT, reap
# children), in Go so that it is static and its image is one file.
mkdir -p "$work/pause"
printf 'module brokkr.local/pause\n\ngo %s\n' "$go_directive" >"$work/pause/go.mod"
cat >"$work/pause/main.go" <<'GO'
// Command pause holds a pod sandbox open until it is told to stop.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s == syscall.SIGCHLD {
			for {
				var status syscall.WaitStatus
				if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
GO
(cd "$work/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/pause" .)

log "built in $((SECONDS - started)) s into $bin"
printf '%s\n' "$bin"
