#!/usr/bin/env bash
# Builds the Smack kernel once into $CACHE/smack-<hash of the fragment and the
# source package>/vmlinux and reuses it afterwards. ~9 minutes on 2 cores.
#   build-smack-kernel.sh <cache-dir>      prints the vmlinux path
set -euo pipefail
cache=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
cd "$cache"
deb=$(ls linux-source-6.1_*_all.deb 2>/dev/null | tail -1 || true)
if [ -z "$deb" ]; then
  apt-get download linux-source-6.1 >&2
  deb=$(ls linux-source-6.1_*_all.deb | tail -1)
fi
key=$(cat "$here/smack-kernel.config" "$here/build-smack-kernel.sh" <(echo "$deb") | sha256sum | cut -c1-16)
out="$cache/smack-$key"
if [ -s "$out/vmlinux" ]; then
  echo "$out/vmlinux"
  exit 0
fi
echo "building the Smack kernel into $out (one time, ~9 min)" >&2
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$out.tmp" --wildcards '*linux-source-6.1.tar.xz'
tar -xJf "$out.tmp"/usr/src/linux-source-6.1.tar.xz -C "$out.tmp"
src="$out.tmp/linux-source-6.1"
make -C "$src" -s tinyconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$here/smack-kernel.config" >&2
make -C "$src" -s olddefconfig >&2
for option in SECURITY_SMACK PVH UNIX SERIAL_8250_CONSOLE BLK_DEV_INITRD; do
  grep -q "^CONFIG_$option=y" "$src/.config" || {
    echo "CONFIG_$option did not stick in .config" >&2
    exit 1
  }
done
make -C "$src" -s -j"$(nproc)" vmlinux >&2
mkdir -p "$out"
cp "$src/vmlinux" "$src/.config" "$out/"
rm -rf "$out.tmp"
echo "$out/vmlinux"
