#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, if they are missing.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
# The real node of the e2e tests and the demo (internal/testbed's Cluster): runc under
# containerd (which hack/tools.sh builds), and the static busybox its test image is made of.
command -v runc >/dev/null || need+=(runc)
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "[deps] installing ${need[*]} with apt-get" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "[deps] need root to install ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "[deps] Go is required (https://go.dev/dl), found none on PATH" >&2; exit 1; }
