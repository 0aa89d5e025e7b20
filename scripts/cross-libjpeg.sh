#!/usr/bin/env bash
# cross-libjpeg.sh: libjpeg-turbo for the cgo cross builds (internal/camjpeg
# links Debian's libjpeg.a statically, so the board needs no libjpeg; only
# the build needs the target's headers and static library).
#
#   cross-libjpeg.sh check ARCH     exit 0 when a cross build for ARCH
#                                   (arm64|armhf) finds libjpeg: Debian's
#                                   libjpeg62-turbo-dev:ARCH installed, or a
#                                   copy fetched as below (internal/camjpeg's
#                                   #cgo lines name build/cross-libjpeg/ARCH)
#   cross-libjpeg.sh fetch ARCH...  download libjpeg62-turbo-dev:ARCH with
#                                   apt-get download and unpack it under
#                                   build/cross-libjpeg/ARCH (as root when
#                                   ARCH is not a dpkg architecture yet: it is
#                                   added for the download and removed after;
#                                   installs no package)
#
# Unpacking the one package instead of installing it keeps libc6:ARCH off
# the machine. Installed, the multiarch glibc is what the cross toolchain's
# loader finds first under qemu-user, and a cgo test binary of that
# architecture hangs at start; and a multiarch install must match the
# host's libc6-dev version exactly, which fails whenever the ARCH index of
# the security archive lags behind the host's.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/build/cross-libjpeg

die() { echo "cross-libjpeg.sh: $*" >&2; exit 1; }

triplet() {
	case $1 in
	arm64) echo aarch64-linux-gnu ;;
	armhf) echo arm-linux-gnueabihf ;;
	*) die "unknown architecture $1 (arm64 or armhf)" ;;
	esac
}

case ${1:-} in
check)
	[ $# -eq 2 ] || die "usage: cross-libjpeg.sh check arm64|armhf"
	t=$(triplet "$2")
	[ -f "/usr/lib/$t/libjpeg.a" ] && [ -f "/usr/include/$t/jconfig.h" ] && exit 0
	[ -f "$root/$2/usr/lib/$t/libjpeg.a" ] && [ -f "$root/$2/usr/include/$t/jconfig.h" ] && exit 0
	echo "cross-libjpeg.sh: no libjpeg for $2 (run scripts/cross-libjpeg.sh fetch $2)" >&2
	exit 1
	;;
fetch)
	shift
	[ $# -ge 1 ] || die "usage: cross-libjpeg.sh fetch arm64|armhf..."
	for arch in "$@"; do
		t=$(triplet "$arch")
		[ -f "$root/$arch/usr/lib/$t/libjpeg.a" ] && continue
		# An architecture added only for this download is removed again:
		# left registered, any index of it that fails to download (a mirror
		# mid-sync) makes every later apt-get update fail.
		added=
		if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
			dpkg --add-architecture "$arch" || die "cannot add $arch to dpkg (run as root)"
			added=$arch
		fi
		tmp=$(mktemp -d)
		download() {
			# apt drops to the _apt user when it can; a directory it cannot
			# write to only costs a warning.
			(cd "$tmp" && apt-get download -q=2 "libjpeg62-turbo-dev:$arch" 2>&1 | grep -v '^W: Download is performed unsandboxed'
			ls ./*.deb >/dev/null 2>&1)
		}
		ok=1
		if [ -n "$added" ] || ! download; then
			apt-get update -qq >/dev/null 2>&1 || true # a lagging index elsewhere does not matter here
			download || ok=
		fi
		[ -z "$added" ] || dpkg --remove-architecture "$added"
		[ -n "$ok" ] || die "apt-get download libjpeg62-turbo-dev:$arch failed"
		rm -rf "${root:?}/$arch" && mkdir -p "$root/$arch"
		dpkg-deb -x "$tmp"/*.deb "$root/$arch"
		rm -rf "$tmp"
		echo "cross-libjpeg.sh: libjpeg62-turbo-dev:$arch in $root/$arch"
	done
	;;
*) die "usage: cross-libjpeg.sh check ARCH | fetch ARCH..." ;;
esac
