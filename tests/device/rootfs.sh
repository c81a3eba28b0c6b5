#!/usr/bin/env bash
# A minimal Debian bookworm root file system for one Raspberry Pi-class architecture,
# built with Debian's own tools and kept in a cache outside the repository.
#
#   tests/device/rootfs.sh arm64|armhf [CACHE_DIR]    -> prints the root's path
#
# arm64 = Raspberry Pi OS 64-bit (Pi 3/4/5); armhf = 32-bit Raspberry Pi OS on armv7
# (Pi 2/3/Zero 2). Foreign binaries run through qemu-user-static and binfmt_misc
# (registered here if it is not). A root is built under a temporary name and renamed
# only when complete, so an interrupted build never leaves a half root in the cache; the
# cache key is the package list below, so changing it rebuilds.
set -euo pipefail
ARCH=${1:?usage: rootfs.sh arm64|armhf [cache-dir]}
CACHE=${2:-${EDGELSTM_DEVICE_CACHE:-/var/cache/edgelstm-device}}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3-venv brings ensurepip (pip itself); gcc + libc6-dev build C exports on the board;
# python3-numpy is the armhf numpy (PyPI has no armv7 numpy wheels; see docs/raspberry-pi.md).
INCLUDE="python3,python3-venv,gcc,libc6-dev"
[ "$ARCH" = armhf ] && INCLUDE="$INCLUDE,python3-numpy"
KEY="$SUITE $ARCH minbase $INCLUDE"
ROOT="$CACHE/$SUITE-$ARCH"
case $ARCH in arm64) QEMU=aarch64 ;; armhf) QEMU=arm ;; *) echo "unknown arch $ARCH" >&2; exit 2 ;; esac

ensure_binfmt() {
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc >&2 || true
  fi
  if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$QEMU" ] || ! grep -q enabled "/proc/sys/fs/binfmt_misc/qemu-$QEMU"; then
    update-binfmts --enable "qemu-$QEMU" >&2 || true
  fi
  # F flag: the kernel opened the static interpreter at registration, so it works inside a chroot.
  if ! grep -q "flags: .*F" "/proc/sys/fs/binfmt_misc/qemu-$QEMU" 2>/dev/null; then
    # No fallback to calling qemu-$QEMU-static by hand: that starts one program, but
    # debootstrap's second stage, dpkg and pip start further Arm programs themselves.
    echo "binfmt_misc cannot run $ARCH binaries here (qemu-$QEMU not registered with the F flag;" \
      "needs root, the binfmt_misc mount and qemu-user-static + binfmt-support)" >&2
    return 1
  fi
}

ensure_binfmt
mkdir -p "$CACHE"
# One build per architecture at a time (CI may start it early in the background).
exec 9>"$CACHE/.lock-$ARCH"
flock 9
if [ -f "$ROOT/.edgelstm-rootfs" ] && [ "$(cat "$ROOT/.edgelstm-rootfs")" = "$KEY" ]; then
  echo "$ROOT"
  exit 0
fi
TMP="$CACHE/.build-$SUITE-$ARCH.$$"
rm -rf "$TMP"
trap 'rm -rf "$TMP"' EXIT
start=$(date +%s)
echo "building $SUITE $ARCH root in $ROOT (debootstrap, no cache yet)" >&2
debootstrap --arch="$ARCH" --variant=minbase --include="$INCLUDE" "$SUITE" "$TMP" "$MIRROR" \
  > "$CACHE/debootstrap-$ARCH.log" 2>&1 || { tail -30 "$CACHE/debootstrap-$ARCH.log" >&2; exit 1; }
rm -rf "$TMP/var/cache/apt/archives/"*.deb "$TMP/var/lib/apt/lists/"*_Packages
echo "$KEY" > "$TMP/.edgelstm-rootfs"
rm -rf "$ROOT"
mv "$TMP" "$ROOT"
trap - EXIT
echo "built $ARCH root in $(( $(date +%s) - start )) s ($(du -sh "$ROOT" | cut -f1))" >&2
echo "$ROOT"
