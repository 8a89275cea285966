# Sourced by control-plane-assets.sh and node-assets.sh: the Go module that builds commands of k8s.io/kubernetes.
#
# k8s.io/kubernetes replaces its staging modules with ./staging paths, which a build outside its tree (or
# `go install pkg@version`) cannot follow. The wrapper module replaces each with its published v0.Y.Z instead; the
# list is generated from the chosen release's own go.mod, so it never drifts.

# write_kubernetes_module DIR NAME VERSION: writes DIR/go.mod for module NAME building Kubernetes VERSION, and sets
# go_directive (the release's Go version) and version_flags (the -ldflags that stamp the version).
write_kubernetes_module() {
  local dir="$1" name="$2" version="$3" staging_version gomod
  staging_version="v0.${version#v1.}"
  mkdir -p "$dir"
  gomod="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$version" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [[ -f "$gomod" ]] || { log "could not download k8s.io/kubernetes@$version"; return 1; }
  go_directive="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
  {
    printf 'module %s\n\ngo %s\n\nreplace (\n' "$name" "$go_directive"
    awk '/^replace \(/{inside=1; next} inside && /^\)/{inside=0} inside && /=> \.\/staging/{print $1}' "$gomod" |
      while read -r module; do printf '\t%s => %s %s\n' "$module" "$module" "$staging_version"; done
    printf ')\n'
  } >"$dir/go.mod"
  log "k8s.io/kubernetes $version ($(grep -c ' => ' "$dir/go.mod") staging modules at $staging_version)"
  version_flags="-s -w -X k8s.io/component-base/version.gitVersion=$version"
  version_flags+=" -X k8s.io/component-base/version.gitMajor=1"
  version_flags+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$version")"
}
