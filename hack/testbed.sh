#!/usr/bin/env bash
# Provide the test bed's binaries at pinned versions, built once from their Go modules
# and cached by version outside the repository.
#
#   hack/testbed.sh            build what is missing, then print the binary folder
#   hack/testbed.sh --print    print the binary folder only (fails if incomplete)
#
# KUBEBUILDER_ASSETS (the envtest convention) is honoured: binaries found there are
# used instead of building them. Prometheus and promtool come from Debian's package.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.5}
KWOK_VERSION=${KWOK_VERSION:-v0.7.0}
HELM_VERSION=${HELM_VERSION:-v3.19.0}

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/quartermaster
BIN=$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION
K8S_TOOLS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
ALL_TOOLS=(etcd "${K8S_TOOLS[@]}" kwok helm)

# Building needs go >= 1.24 (the modules below declare it; checked before any build).
# GOTOOLCHAIN is left as the machine sets it: with GOTOOLCHAIN=local an older go cannot
# fetch a newer toolchain, hence the check.
export GOFLAGS=-buildvcs=false CGO_ENABLED=0

log() { echo "testbed: $*" >&2; }

complete() {
  local t
  for t in "${ALL_TOOLS[@]}"; do [ -x "$BIN/$t" ] || return 1; done
  command -v prometheus >/dev/null && command -v promtool >/dev/null
}

if [ "${1:-}" = "--print" ]; then
  complete || { log "incomplete ($BIN, prometheus, promtool): run make testbed"; exit 1; }
  echo "$BIN"; exit 0
fi

# Debian's packages: openssl (the test cluster's certificates), flock (below), Prometheus.
packages=()
command -v openssl >/dev/null || packages+=(openssl)
command -v flock >/dev/null || packages+=(util-linux)
{ command -v prometheus && command -v promtool; } >/dev/null || packages+=(prometheus)
if [ ${#packages[@]} -gt 0 ]; then
  log "installing ${packages[*]} from Debian"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # Prometheus's package starts a system service; the test bed runs its own instances.
  $SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi

mkdir -p "$BIN"
# One build at a time (parallel test runs, a demo and a test session may all ask).
exec 9>"$CACHE/.lock"
flock 9

# Reuse a user's envtest binaries (etcd, kube-apiserver, kubectl) when present.
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  for t in etcd kube-apiserver kubectl; do
    if [ -x "$KUBEBUILDER_ASSETS/$t" ] && [ ! -e "$BIN/$t" ]; then
      ln -s "$KUBEBUILDER_ASSETS/$t" "$BIN/$t"; log "using $KUBEBUILDER_ASSETS/$t"
    fi
  done
fi

# A throwaway module per tool: `go build` of a package from a required module.
# $1 module dir name, $2 go.mod body, then pairs of (package, output name).
build_in_module() {
  local name=$1 gomod=$2; shift 2
  local dir; dir=$(mktemp -d "${TMPDIR:-/tmp}/qm-build-$name.XXXX")
  printf '%s\n' "$gomod" > "$dir/go.mod"
  (
    cd "$dir"
    while [ $# -gt 0 ]; do
      local pkg=$1 out=$2; shift 2
      if [ ! -x "$BIN/$out" ]; then
        log "building $out from $pkg"
        # -mod=mod resolves the pinned module's dependencies without upgrading it.
        go build -mod=mod -trimpath -ldflags="-s -w" -o "$BIN/$out.tmp" "$pkg"
        mv "$BIN/$out.tmp" "$BIN/$out"
      fi
    done
  )
  rm -rf "$dir"
}

need() { local t; for t in "$@"; do [ -x "$BIN/$t" ] || return 0; done; return 1; }

if need "${ALL_TOOLS[@]}"; then
  command -v go >/dev/null || { log "Go >= 1.24 is needed to build the test bed; none on PATH"; exit 1; }
  go_version=$(go env GOVERSION)   # e.g. go1.24.3
  IFS=. read -r go_major go_minor _ <<<"${go_version#go}"
  go_minor=${go_minor%%[!0-9]*}   # 24rc1 -> 24
  if [ "${go_major:-0}" -lt 1 ] || { [ "$go_major" -eq 1 ] && [ "${go_minor:-0}" -lt 24 ]; }; then
    log "Go >= 1.24 is needed to build the test bed; found $go_version ($(command -v go))"
    exit 1
  fi
fi

if need etcd; then
  build_in_module etcd "module qmtools/etcd
go 1.24
require go.etcd.io/etcd/server/v3 $ETCD_VERSION" \
    go.etcd.io/etcd/server/v3 etcd
fi

if need "${K8S_TOOLS[@]}"; then
  # k8s.io/kubernetes replaces its staging modules with local paths; pin each one to the
  # matching published v0.x.y instead, reading the list from the module's own go.mod.
  staging=${K8S_VERSION/v1./v0.}
  gomod_file=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  replaces=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1 => \1 '"$staging"'#p' "$gomod_file")
  build_in_module kubernetes "module qmtools/kubernetes
go 1.24
require k8s.io/kubernetes $K8S_VERSION
replace (
$replaces
)" \
    k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl kubectl
fi

if need kwok; then
  build_in_module kwok "module qmtools/kwok
go 1.24
require sigs.k8s.io/kwok $KWOK_VERSION" \
    sigs.k8s.io/kwok/cmd/kwok kwok
fi

if need helm; then
  build_in_module helm "module qmtools/helm
go 1.24
require helm.sh/helm/v3 $HELM_VERSION" \
    helm.sh/helm/v3/cmd/helm helm
fi

complete || { log "some binaries are missing in $BIN"; exit 1; }
echo "$BIN"
