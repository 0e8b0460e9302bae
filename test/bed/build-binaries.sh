#!/usr/bin/env bash
# Builds the test control plane's binaries from the Go module proxy and caches them under
# ~/.cache/mokd-testbed/<component>-<version>/. Never downloads a release binary.
# Usage: build-binaries.sh            (builds whatever is missing; prints the bin dir)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# etcd >= 3.5.13 (or 3.4.31): older ones lack the progress notifications the apiserver needs for RequestWatchProgress,
# and without it client-go's streaming lists (WatchListClient, on by default in 1.36) fail and back off for seconds.
# v3.6.8 is the etcd that Kubernetes v1.36.3's go.mod uses.
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"
CACHE="${MOKD_TESTBED_CACHE:-$HOME/.cache/mokd-testbed}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export CGO_ENABLED=0
# Linking kube-apiserver peaks around 2 GiB; two parallel links fit in 24 GiB.
export GOMAXPROCS="${GOMAXPROCS:-2}"

log() { echo "[testbed-build] $*" >&2; }

build_kubernetes() {
  local out="$CACHE/kubernetes-$K8S_VERSION"
  if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" && -x "$out/kube-scheduler" && -x "$out/kubectl" ]]; then
    return
  fi
  log "building Kubernetes $K8S_VERSION (cold: tens of minutes)"
  local work="$CACHE/src/kubernetes-$K8S_VERSION"
  mkdir -p "$work" "$out.tmp"
  (
    cd "$work"
    local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
    local staging="v0.${K8S_VERSION#v1.}"
    go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
    local upstream_mod
    upstream_mod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
    local go_directive godebug
    go_directive="$(grep -E '^go [0-9.]+$' "$upstream_mod" | head -1)"
    godebug="$(grep -E '^godebug ' "$upstream_mod" | head -1 || true)"
    {
      echo "module mokd.local/testbed-kubernetes"
      echo
      echo "$go_directive"
      [[ -n "$godebug" ]] && echo "$godebug"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      echo "replace ("
      # Every staging module upstream replaces with ./staging/src/k8s.io/<m> is published as k8s.io/<m> v0.Y.Z.
      grep -E '=> \./staging/src/' "$upstream_mod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } >go.mod
    cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    go mod tidy -e >/dev/null 2>&1 || true
    local commit date ldflags=""
    commit="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Hash": "\([0-9a-f]*\)".*/\1/p' | head -1)"
    [[ -n "$commit" ]] || commit="0000000000000000000000000000000000000000"
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
    done
    for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
      log "  go build $cmd"
      go build -trimpath -tags=selinux,notest -ldflags "-s -w$ldflags" -o "$out.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
  )
  rm -rf "$out"; mv "$out.tmp" "$out"
}

build_go_tool() { # name version module-path ldflags
  local name="$1" version="$2" pkg="$3" ldflags="$4"
  local out="$CACHE/$name-$version"
  [[ -x "$out/$name" ]] && return
  log "building $name $version"
  local work="$CACHE/src/$name-$version"
  mkdir -p "$work" "$out.tmp"
  (
    cd "$work"
    GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version"
  )
  rm -rf "$out"; mv "$out.tmp" "$out"
}

build_etcd() {
  local out="$CACHE/etcd-$ETCD_VERSION"
  [[ -x "$out/etcd" ]] && return
  log "building etcd $ETCD_VERSION"
  # etcd's own main module uses relative replaces; a three-line main calling etcdmain.Main builds from the proxy.
  local work="$CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$work" "$out.tmp"
  (
    cd "$work"
    cat >go.mod <<MOD
module mokd.local/testbed-etcd

go 1.24.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
    cat >main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    go mod tidy >/dev/null 2>&1
    go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" .
  )
  rm -rf "$out"; mv "$out.tmp" "$out"
}

mkdir -p "$CACHE"
# Several test runs may start at once on a fresh machine: one builds, the others wait for it.
exec 9>"$CACHE/.build.lock"
flock 9
build_etcd
build_go_tool kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
helm_minor="${K8S_VERSION#v1.}"; helm_minor="${helm_minor%%.*}"
build_go_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$helm_minor"
build_kubernetes

# One bin dir of symlinks: what the test bed puts on PATH.
bin="$CACHE/bin-$K8S_VERSION"
mkdir -p "$bin"
for f in "$CACHE/kubernetes-$K8S_VERSION"/* "$CACHE/kwok-$KWOK_VERSION/kwok" "$CACHE/helm-$HELM_VERSION/helm" "$CACHE/etcd-$ETCD_VERSION/etcd"; do
  ln -sf "$f" "$bin/$(basename "$f")"
done
echo "$bin"
