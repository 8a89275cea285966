#!/usr/bin/env bash
# Provides helm, promtool and third-party CRDs for the chart tests and prints the folder that holds them.
#
# - BROKKR_HELM and BROKKR_PROMTOOL name binaries a user already has; each one set is used as it is.
# - Otherwise each is built once with Go from the module proxy into a versioned cache outside the clone
#   (${XDG_CACHE_HOME:-~/.cache}/brokkr/tools/<tool>-<version>/bin), so later runs and fresh clones reuse it.
#   First run: about 2 minutes for helm and 9 for promtool on 2 cores (631 s for both, measured).
#
# Only the folder is printed on stdout (symlinks to the chosen binaries, and crds/ with the CRDs of the chart's
# optional objects from prometheus-operator's and cert-manager's Go modules); progress goes to stderr.
set -euo pipefail

HELM_VERSION="${BROKKR_HELM_VERSION:-v3.22.0}"
PROMETHEUS_OPERATOR_VERSION="${BROKKR_PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
CERT_MANAGER_VERSION="${BROKKR_CERT_MANAGER_VERSION:-v1.21.2}"
PROMETHEUS_VERSION="${BROKKR_PROMETHEUS_VERSION:-v0.316.0}"

log() { printf 'chart-tools: %s\n' "$*" >&2; }
source "$(dirname "$0")/disk.sh"

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/brokkr/tools"

# build NAME PACKAGE VERSION [LDFLAGS]: go install PACKAGE@VERSION into the cache unless it is there; prints the
# binary. The cache folder is named after everything that goes into the build.
build() {
  local name=$1 package=$2 version=$3 ldflags=${4:-}
  local bin="$cache_root/$name-$version${ldflags:+-$(printf '%s' "$ldflags" | sha256sum | cut -c1-8)}/bin"
  if [[ -x "$bin/$name" ]]; then
    log "cached: $bin/$name"
  else
    command -v go >/dev/null || { log "go is not installed; install Go 1.26 or newer, or set BROKKR_${name^^}"; exit 1; }
    # Measured: 9.1 GiB of Go caches after this build and control-plane-assets.sh's on an empty machine.
    require_space "the Go build of $name" "$(go env GOCACHE)" 9500 "$(go env GOCACHE)" "$(go env GOMODCACHE)"
    log "building $name $version from the Go module proxy (once)"
    local started=$SECONDS
    mkdir -p "$bin"
    local tmp
    tmp="$(mktemp -d "$cache_root/build.XXXXXX")"
    GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w $ldflags" "$package@$version"
    mv "$tmp/$name" "$bin/$name"
    rm -rf "$tmp"
    log "built $name in $((SECONDS - started)) s"
  fi
  printf '%s\n' "$bin/$name"
}

# pick NAME OVERRIDE PACKAGE VERSION [LDFLAGS]: the override if set, else the cached build.
pick() {
  local name=$1 override=$2 package=$3 version=$4 ldflags=${5:-}
  if [[ -n "$override" ]]; then
    [[ -x "$override" ]] || { log "BROKKR_${name^^}=$override is not an executable file"; exit 1; }
    log "using BROKKR_${name^^}=$override"
    printf '%s\n' "$override"
  else
    build "$name" "$package" "$version" "$ldflags"
  fi
}

mkdir -p "$cache_root"
# What helm's own Makefile sets: without it, `helm version` says v3.22 and `helm template` assumes Kubernetes
# 1.20, which the chart's kubeVersion (>= 1.30) refuses. 1.37 is the version of helm's k8s.io modules.
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/chartutil pkg/lint/rules; do
  helm_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=37"
done
helm="$(pick helm "${BROKKR_HELM:-}" helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$helm_ldflags")"
promtool="$(pick promtool "${BROKKR_PROMTOOL:-}" github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION")"

# One folder of symlinks, named after the choice, so callers need a single path.
links="$cache_root/selected-$(printf '%s\n%s\n' "$helm" "$promtool" | sha256sum | cut -c1-12)"
mkdir -p "$links"
ln -sfn "$helm" "$links/helm"
ln -sfn "$promtool" "$links/promtool"

# The CRDs of the optional objects the chart renders (ServiceMonitor, PrometheusRule, cert-manager Issuer and
# Certificate), from the projects' own Go modules, so the API server can dry-run them: crds/*.yaml.
crd() {
  local module=$1 version=$2 dir
  shift 2
  dir="$(cd "$cache_root" && go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$dir" ]] || { log "could not download $module@$version"; exit 1; }
  for file in "$@"; do cp "$dir/$file" "$links/crds/"; done
}
mkdir -p "$links/crds"
crd github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" \
  example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
  example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml
crd github.com/cert-manager/cert-manager "$CERT_MANAGER_VERSION" \
  deploy/crds/cert-manager.io_issuers.yaml deploy/crds/cert-manager.io_certificates.yaml
chmod u+w "$links"/crds/*.yaml
printf '%s\n' "$links"
