#!/usr/bin/env bash
# Builds the test control plane's binaries from the Go module proxy and caches them under
# ~/.cache/mokd-testbed/<component>-<version>/. Never downloads a release binary.
# Usage: build-binaries.sh            (builds whatever is missing; prints the bin dir)
#        build-binaries.sh versitygw  (builds only the S3 server, for the unit tests; prints its path)
#        build-binaries.sh helm       (builds only helm, for the unit tests' `helm template`; prints its path)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# etcd >= 3.5.13 (or 3.4.31): older ones lack the progress notifications the apiserver needs for RequestWatchProgress,
# and without it client-go's streaming lists (WatchListClient, on by default in 1.36) fail and back off for seconds.
# v3.6.8 is the etcd that Kubernetes v1.36.3's go.mod uses.
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"
KUEUE_VERSION="${KUEUE_VERSION:-v0.17.0}"
# Debian's Prometheus 2.42 is built without Kubernetes service discovery; this one has only it (and file/http),
# for the end-to-end test's discovery of pods and Service endpoints. Module v0.316.0 is Prometheus 3.16.0.
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
# The S3-compatible server of the storage tests (Apache-2.0; no replace directives: builds with go install).
VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"
# The real node's sandbox image (see build_pause); the name containerd's sandbox_image points at.
PAUSE_VERSION="${PAUSE_VERSION:-1}"
PAUSE_IMAGE="localhost/mokd/pause:$PAUSE_VERSION"
CACHE="${MOKD_TESTBED_CACHE:-$HOME/.cache/mokd-testbed}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export CGO_ENABLED=0
# Linking kube-apiserver peaks around 2 GiB; two parallel links fit in 24 GiB.
export GOMAXPROCS="${GOMAXPROCS:-2}"

log() { echo "[testbed-build] $*" >&2; }

# Writes, in the current dir, a consumer module of k8s.io/kubernetes: every staging module upstream replaces with
# ./staging/src/k8s.io/<m> is replaced by the published k8s.io/<m> v0.Y.Z; tools.go imports the given commands.
write_kubernetes_module() { # cmd...
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
    grep -E '=> \./staging/src/' "$upstream_mod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >go.mod
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for cmd in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
    printf ')\n'
  } >tools.go
  go mod tidy -e >/dev/null 2>&1 || true
}

# Builds the given k8s.io/kubernetes commands into <out> like upstream: static, trimmed, version stamped.
build_kubernetes_cmds() { # out-dir src-name cmd...
  local out="$1" name="$2"; shift 2
  local work="$CACHE/src/$name-$K8S_VERSION"
  mkdir -p "$work" "$out.tmp"
  (
    cd "$work"
    write_kubernetes_module "$@"
    local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
    local commit date ldflags=""
    commit="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Hash": "\([0-9a-f]*\)".*/\1/p' | head -1)"
    [[ -n "$commit" ]] || commit="0000000000000000000000000000000000000000"
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
    done
    for cmd in "$@"; do
      log "  go build $cmd"
      go build -trimpath -tags=selinux,notest -ldflags "-s -w$ldflags" -o "$out.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
  )
  rm -rf "$out"; mv "$out.tmp" "$out"
}

build_kubernetes() {
  local out="$CACHE/kubernetes-$K8S_VERSION"
  if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" && -x "$out/kube-scheduler" && -x "$out/kubectl" ]]; then
    return
  fi
  log "building Kubernetes $K8S_VERSION (cold: tens of minutes)"
  build_kubernetes_cmds "$out" kubernetes kube-apiserver kube-controller-manager kube-scheduler kubectl
}

# The real node's kubelet and kube-proxy: the same consumer go.mod, in a module dir of their own so that adding
# them never invalidates the control plane's cached binaries (they share the Go build cache: ~100 new packages).
build_node() {
  local out="$CACHE/kubernetes-node-$K8S_VERSION"
  [[ -x "$out/kubelet" && -x "$out/kube-proxy" ]] && return
  log "building kubelet and kube-proxy $K8S_VERSION"
  build_kubernetes_cmds "$out" kubernetes-node kubelet kube-proxy
}

# The sandbox ("pause") image of the real node: the registry.k8s.io one is unreachable here, so a ~20-line static
# Go program FROM scratch, written as a docker-archive that `ctr images import` takes. Reproducible (fixed mtimes).
build_pause() {
  local out="$CACHE/pause-$PAUSE_VERSION"
  [[ -s "$out/pause.tar" ]] && return
  log "building the pause image $PAUSE_IMAGE"
  local work="$CACHE/src/pause-$PAUSE_VERSION"
  rm -rf "$work" "$out.tmp"; mkdir -p "$work/rootfs" "$work/image" "$out.tmp"
  (
    cd "$work"
    printf 'module mokd.local/pause\n\ngo 1.24\n' >go.mod
    cat >main.go <<'GO'
// The pod sandbox's process: holds the namespaces, reaps orphans, exits on SIGINT/SIGTERM.
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
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
    go build -trimpath -ldflags "-s -w" -o rootfs/pause .
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C rootfs -cf image/layer.tar pause
    local diff config
    diff="sha256:$(sha256sum image/layer.tar | cut -d' ' -f1)"
    printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"]},"rootfs":{"type":"layers","diff_ids":["%s"]},"history":[{"created_by":"mokd test bed: static pause"}]}' \
      "$diff" >image/config.json
    config="$(sha256sum image/config.json | cut -d' ' -f1).json"
    mv image/config.json "image/$config"
    printf '[{"Config":"%s","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$config" "$PAUSE_IMAGE" >image/manifest.json
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C image -cf "$out.tmp/pause.tar" .
  )
  rm -rf "$out"; mv "$out.tmp" "$out"
}

build_go_tool() { # name version module-path ldflags [build-tags]
  local name="$1" version="$2" pkg="$3" ldflags="$4" tags="${5:-}"
  local out="$CACHE/$name-$version"
  [[ -x "$out/$name" ]] && return
  log "building $name $version"
  local work="$CACHE/src/$name-$version"
  mkdir -p "$work" "$out.tmp"
  (
    cd "$work"
    GOBIN="$out.tmp" go install -trimpath -tags "$tags" -ldflags "-s -w $ldflags" "$pkg@$version"
  )
  rm -rf "$out"; mv "$out.tmp" "$out"
}

build_helm() {
  local helm_minor="${K8S_VERSION#v1.}"; helm_minor="${helm_minor%%.*}"
  build_go_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$helm_minor"
}

build_prometheus() {
  # Module v0.3MM.P is Prometheus 3.MM.P.
  local v="${PROMETHEUS_VERSION#v0.}" minor patch
  minor="${v%%.*}"; patch="${v#*.}"; patch="${patch#*.}"
  build_go_tool prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/prometheus \
    "-X github.com/prometheus/common/version.Version=3.$((minor - 300)).$patch" "remove_all_sd,enable_kubernetes_sd"
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

# The real node runs on Debian's containerd, runc and CNI plugins (nothing is started by installing them).
ensure_node_packages() {
  command -v containerd >/dev/null && command -v ctr >/dev/null && command -v runc >/dev/null \
    && [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] && return
  [[ $(id -u) -eq 0 ]] || { log "the real node needs: apt-get install containerd runc containernetworking-plugins"; return 1; }
  log "installing Debian's containerd runc containernetworking-plugins"
  apt-get install -y -q containerd runc containernetworking-plugins >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q containerd runc containernetworking-plugins >/dev/null; }
}

build_versitygw() {
  build_go_tool versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw \
    "-X main.Version=$VERSITYGW_VERSION"
}

main() {
  mkdir -p "$CACHE"
  local vgw="$CACHE/versitygw-$VERSITYGW_VERSION/versitygw" helm="$CACHE/helm-$HELM_VERSION/helm"
  # Cached: no need to wait for the build lock (another run may hold it for a long cold build).
  if [[ "${1:-}" == "versitygw" && -x "$vgw" ]]; then echo "$vgw"; return; fi
  if [[ "${1:-}" == "helm" && -x "$helm" ]]; then echo "$helm"; return; fi
  # Several test runs may start at once on a fresh machine: one builds, the others wait for it.
  exec 9>"$CACHE/.build.lock"
  flock 9
  if [[ "${1:-}" == "versitygw" ]]; then
    build_versitygw
    echo "$vgw"
    return
  fi
  if [[ "${1:-}" == "helm" ]]; then
    build_helm
    echo "$helm"
    return
  fi
  build_etcd
  build_go_tool kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
  build_helm
  build_kubernetes
  build_node
  ensure_node_packages
  build_pause
  build_go_tool kueue "$KUEUE_VERSION" sigs.k8s.io/kueue/cmd/kueue \
    "-X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION"
  build_prometheus
  build_versitygw
  # Kueue's CRDs, RBAC and webhook manifests ship in its module: the bed installs them from the module cache.
  local kueue_src
  kueue_src="$(cd "$CACHE/src/kueue-$KUEUE_VERSION" && go mod download -json "sigs.k8s.io/kueue@$KUEUE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"

  # One bin dir of symlinks: what the test bed puts on PATH.
  local bin="$CACHE/bin-$K8S_VERSION" f
  mkdir -p "$bin"
  for f in "$CACHE/kubernetes-$K8S_VERSION"/* "$CACHE/kubernetes-node-$K8S_VERSION"/* "$CACHE/kwok-$KWOK_VERSION/kwok" \
    "$CACHE/helm-$HELM_VERSION/helm" "$CACHE/etcd-$ETCD_VERSION/etcd" "$CACHE/kueue-$KUEUE_VERSION/kueue" \
    "$CACHE/prometheus-$PROMETHEUS_VERSION/prometheus" "$CACHE/versitygw-$VERSITYGW_VERSION/versitygw"; do
    ln -sf "$f" "$bin/$(basename "$f")"
  done
  ln -sfn "$kueue_src/config/components" "$bin/kueue-manifests"
  ln -sf "$CACHE/pause-$PAUSE_VERSION/pause.tar" "$bin/pause.tar"
  echo "$bin"
}

# `source build-binaries.sh` only defines the functions (to build one part by hand).
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
