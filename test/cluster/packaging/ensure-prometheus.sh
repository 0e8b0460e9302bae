#!/usr/bin/env bash
# Extracts Debian's prometheus (server + promtool) into ~/.cache/mokd-testbed/prometheus-<version>/ without
# installing the package, so no system service starts. Prints the directory holding the binaries.
set -euo pipefail
CACHE="${MOKD_TESTBED_CACHE:-$HOME/.cache/mokd-testbed}"
log() { echo "[prometheus] $*" >&2; }

existing="$(ls -d "$CACHE"/prometheus-*/ 2>/dev/null | head -1 || true)"
if [[ -n "$existing" && -x "$existing/prometheus" && -x "$existing/promtool" ]]; then
  echo "${existing%/}"
  exit 0
fi

work="$CACHE/src/prometheus-deb"
rm -rf "$work"; mkdir -p "$work"
cd "$work"
log "apt-get download prometheus (no service is started)"
if ! apt-get download prometheus >/dev/null 2>&1; then
  (apt-get update >/dev/null 2>&1 || true)
  apt-get download prometheus >/dev/null
fi
deb="$(ls prometheus_*.deb | head -1)"
version="$(dpkg-deb -f "$deb" Version | sed 's/[^A-Za-z0-9.]/_/g')"
dpkg-deb -x "$deb" root
out="$CACHE/prometheus-$version"
rm -rf "$out.tmp"; mkdir -p "$out.tmp"
cp root/usr/bin/prometheus root/usr/bin/promtool "$out.tmp/"
rm -rf "$out"; mv "$out.tmp" "$out"
echo "$out"
