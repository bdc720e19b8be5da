#!/usr/bin/env bash
# Unpacks qemu-system-x86 and Debian's cloud kernel into $RKUBE_VM_DIR (default /var/cache/rkube-vm) for the
# cgroup v2 tests, which boot a TCG VM. The .debs are unpacked with dpkg-deb -x, not installed: installing
# qemu-system-x86 here would replace the machine's qemu-utils.
set -euo pipefail
dir=${RKUBE_VM_DIR:-/var/cache/rkube-vm}
# Debian 12's library packages are not all merged-/usr (libnl unpacks under /lib): qemu needs both directories,
# as tests/support/src/vm.rs gives it.
libs="$dir/root/usr/lib/x86_64-linux-gnu:$dir/root/lib/x86_64-linux-gnu"
unpacked() {
  [ -x "$dir/root/usr/bin/qemu-system-x86_64" ] && ls "$dir"/root/boot/vmlinuz-* >/dev/null 2>&1 &&
    ! LD_LIBRARY_PATH="$libs" ldd "$dir/root/usr/bin/qemu-system-x86_64" | grep -q 'not found'
}
unpacked && exit 0
mkdir -p "$dir/debs" "$dir/root"
cd "$dir/debs"
kernel=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$kernel" ] || { echo "vm-deps: cannot resolve linux-image-cloud-amd64 (run apt-get update)" >&2; exit 1; }
pkgs=(qemu-system-x86 qemu-system-common qemu-system-data seabios "$kernel")
# Libraries qemu links that a plain Debian 12 machine may lack.
pkgs+=(libcapstone4 libfdt1 libpmem1 librdmacm1 libibverbs1 libvdeplug2 libndctl6 libdaxctl1 libnl-3-200
       libnl-route-3-200 libslirp0 libaio1 libbpf1 liburing2 libpixman-1-0 libfuse3-3 libnuma1)
# apt-get download drops privileges to _apt; let it write here.
chown _apt "$dir/debs" 2>/dev/null || true
apt-get download "${pkgs[@]}" >/dev/null
for d in *.deb; do dpkg-deb -x "$d" "$dir/root"; done
missing=$(LD_LIBRARY_PATH="$libs" ldd "$dir/root/usr/bin/qemu-system-x86_64" | grep 'not found' || true)
[ -z "$missing" ] || { echo "vm-deps: qemu still lacks: $missing" >&2; exit 1; }
echo "vm-deps: qemu and $kernel unpacked under $dir/root"
