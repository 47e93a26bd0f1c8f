#!/usr/bin/env bash
# Builds the pinned test-bed tools (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kubectl, the reference CNI plugins, containerd, golangci-lint) from the Go modules under hack/tools and caches them outside the clone, in
# ${XDG_CACHE_HOME:-$HOME/.cache}/multinet/<key>/, keyed on the pins and the Go version, so
# a fresh clone reuses them. Builds hold ~/.cache/multinet/tools.lock (the lock
# internal/testbed takes too), so concurrent callers build each tool once. Prints the cache
# directory on its last line.
#   hack/tools.sh            build what is missing
#   hack/tools.sh kube|cni|containerd|lint   only that group
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/multinet
export GOFLAGS=-mod=mod GONOSUMDB='k8s.io/*' CGO_ENABLED=0
# The kubelet's container log symlinks go under the test bed's own root (internal/testbed's
# clusterRoot), not /var/log/containers; the path is a build-time constant of the kubelet.
testbed_root=/var/lib/multinet-testbed

log() { printf '[tools] %s\n' "$*" >&2; }

key_of() { # $1 group
  cat "$here/tools/$1/go.mod" "$here/tools/$1/go.sum" <(go version) | sha256sum | cut -c1-12
}

build_group() { # $1 group; then name=package pairs
  local group=$1; shift
  local dir=$cache_root/$group-$(key_of "$group")
  mkdir -p "$dir"
  local tags=""
  local ldflags=""
  if [ "$group" = kube ]; then
    # The version the binaries report (else v0.0.0-master): the pinned k8s.io/kubernetes.
    local v ld="" minor
    v=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$here/tools/kube/go.mod")
    minor=${v#v1.}; minor=${minor%%.*}
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    done
    ldflags="-s -w$ld"
    kubelet_ldflags="$ldflags -X k8s.io/kubernetes/pkg/kubelet.ContainerLogsDir=$testbed_root/container-logs"
  elif [ "$group" = containerd ]; then
    # As containerd's Makefile builds it, without cgo: the version it reports (else
    # "2.x+unknown"), and no btrfs, devmapper or zfs snapshotter (the test bed uses "native").
    local v; v=$(cd "$here/tools/containerd" && go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
    ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$v"
    ldflags+=" -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd"
    tags=urfave_cli_no_docs,no_btrfs,no_devmapper,no_zfs
  else
    ldflags="-s -w"
  fi
  for pair in "$@"; do
    local name=${pair%%=*} pkg=${pair#*=}
    [ -x "$dir/$name" ] && continue
    local ld=$ldflags
    [ "$name" = kubelet ] && ld=$kubelet_ldflags
    log "building $name from $pkg (cached in $dir)"
    case $name in kube-apiserver) log "kube-apiserver takes about 4-5 minutes cold on 2 cores";; esac
    local start=$SECONDS
    (cd "$here/tools/$group" && go build -trimpath -tags "$tags" -ldflags "$ld" -o "$dir/$name.tmp" "$pkg")
    mv "$dir/$name.tmp" "$dir/$name"
    log "built $name in $((SECONDS - start))s"
  done
  echo "$dir"
}

want=${1:-all}
mkdir -p "$cache_root"
exec 9>"$cache_root/tools.lock"
flock 9
case $want in
  kube|all) build_group kube etcd=go.etcd.io/etcd/server/v3 kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
      kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
      kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
      kubelet=k8s.io/kubernetes/cmd/kubelet \
      kubectl=k8s.io/kubernetes/cmd/kubectl ;;&
  cni|all) build_group cni \
      bridge=github.com/containernetworking/plugins/plugins/main/bridge \
      macvlan=github.com/containernetworking/plugins/plugins/main/macvlan \
      ptp=github.com/containernetworking/plugins/plugins/main/ptp \
      loopback=github.com/containernetworking/plugins/plugins/main/loopback \
      host-local=github.com/containernetworking/plugins/plugins/ipam/host-local \
      static=github.com/containernetworking/plugins/plugins/ipam/static \
      host-device=github.com/containernetworking/plugins/plugins/main/host-device \
      tuning=github.com/containernetworking/plugins/plugins/meta/tuning ;;&
  containerd|all) build_group containerd containerd=github.com/containerd/containerd/v2/cmd/containerd \
      containerd-shim-runc-v2=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
      ctr=github.com/containerd/containerd/v2/cmd/ctr ;;&
  lint|all) build_group lint golangci-lint=github.com/golangci/golangci-lint/v2/cmd/golangci-lint ;;&
  kube|cni|containerd|lint|all) ;;
  *) echo "usage: $0 [kube|cni|containerd|lint|all]" >&2; exit 2 ;;
esac
