#!/usr/bin/env bash
# Build (once) a Debian trixie chroot with darktable 5 and GIMP 3 for the integration tests (DESIGN.md §4–5).
# Usage: tests/trixie/build.sh [DIR]   (default ${PYOPS_TRIXIE:-/var/cache/pyops/trixie}); prints DIR.
# A finished chroot is marked with .pyops-ready and reused; a half-built one is rebuilt.
set -euo pipefail
root=${1:-${PYOPS_TRIXIE:-/var/cache/pyops/trixie}}
packages="darktable gimp python3 python3-gi python3-numpy xvfb xauth"
if [ -f "$root/.pyops-ready" ] && [ "$(cat "$root/.pyops-ready")" = "$packages" ]; then
  echo "$root"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
rm -rf "$root"
mkdir -p "$(dirname "$root")"
debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian >&2
cp /etc/resolv.conf "$root/etc/resolv.conf"
unshare -m sh -c "mount -t proc proc '$root/proc' && chroot '$root' sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages'" >&2
chroot "$root" apt-get clean
echo "$packages" > "$root/.pyops-ready"
echo "$root"
