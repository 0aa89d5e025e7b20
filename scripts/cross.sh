#!/usr/bin/env bash
# cross.sh: build edge-agent for Raspberry Pi boards into bin/ (make cross).
#
#   pure Go (always):  edge-agent-linux-armv6   Pi Zero/1 and up, 32-bit OS
#                      edge-agent-linux-armv7   Pi 2 and up, 32-bit OS
#                      edge-agent-linux-arm64   Pi 3/4/5/Zero 2 W, 64-bit OS
#   cgo (microphone):  edge-agent-linux-arm64-cgo, edge-agent-linux-armv7-cgo
#
# The cgo builds need Debian's cross compilers. CROSS_CGO=auto (default)
# builds them when the compilers are installed and says so when they are not;
# CROSS_CGO=1 makes a missing compiler an error (CI); CROSS_CGO=0 skips them.
# ARMv6 has no cgo build: Debian's armhf toolchain emits ARMv7/Thumb-2 code
# that dies with SIGILL on an ARM1176 (docs/protocols/hardware.md §5.2).
#
# The cgo builds link libjpeg-turbo statically (internal/camjpeg): the
# target's libjpeg62-turbo-dev, which scripts/cross-libjpeg.sh fetch unpacks
# under build/. Without it, CROSS_CGO=auto builds them with camjpeg's pure-Go
# codec (-tags nolibjpeg) and says so; CROSS_CGO=1 makes it an error.
#
# This script installs nothing. Packages: gcc-aarch64-linux-gnu,
# gcc-arm-linux-gnueabihf (Debian 12).
#
# Environment: OUT (default bin), VERSION, COMMIT (stamped into the binary),
# CROSS_TARGETS (default "armv6 armv7 arm64 arm64-cgo armv7-cgo").
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bin}
PKG=./cmd/edge-agent
CROSS_CGO=${CROSS_CGO:-auto}
CROSS_TARGETS=${CROSS_TARGETS:-armv6 armv7 arm64 arm64-cgo armv7-cgo}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || true)}
LDFLAGS="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}"
# 64-bit time_t and off_t for armhf: miniaudio's timer overflows a 32-bit
# tv_sec × 1e9 and loses its pacing every ~4.3 s without them
# (docs/protocols/hardware.md §2.3). Keep
# these flags identical in every step, or the 45 s miniaudio compile is paid
# again (they are part of the build cache key).
ARMHF_CGO_CFLAGS="-O2 -g -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64"

die() { echo "cross.sh: $*" >&2; exit 1; }
command -v go >/dev/null || die "go not found in PATH"

build() {
	local name=$1
	shift
	echo "cross.sh: $OUT/$name ($*)"
	env "$@" go build -trimpath ${TAGS:+-tags "$TAGS"} -ldflags "$LDFLAGS" -o "$OUT/$name" "$PKG"
}

# jpeg DEBARCH: TAGS for a cgo build, per the target's libjpeg and CROSS_CGO.
jpeg() {
	TAGS=
	scripts/cross-libjpeg.sh check "$1" && return 0
	case $CROSS_CGO in
	1 | yes) die "no libjpeg for $1: run scripts/cross-libjpeg.sh fetch $1" ;;
	esac
	echo "cross.sh: the $1 cgo build uses the pure-Go JPEG codec (-tags nolibjpeg)" >&2
	TAGS=nolibjpeg
}

# have CC PACKAGE: whether the cgo build can run, per CROSS_CGO.
have() {
	command -v "$1" >/dev/null && return 0
	case $CROSS_CGO in
	1 | yes) die "$1 not found; install the Debian package $2 (apt-get install -y $2)" ;;
	*) echo "cross.sh: skipping a cgo build: $1 not found (Debian package $2)" >&2; return 1 ;;
	esac
}

mkdir -p "$OUT"
built=()
for target in $CROSS_TARGETS; do
	case $target in
	armv6) build edge-agent-linux-armv6 CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 ;;
	armv7) build edge-agent-linux-armv7 CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 ;;
	arm64) build edge-agent-linux-arm64 CGO_ENABLED=0 GOOS=linux GOARCH=arm64 ;;
	arm64-cgo)
		case $CROSS_CGO in 0 | no) continue ;; esac
		have aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu || continue
		jpeg arm64
		build edge-agent-linux-arm64-cgo CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc
		;;
	armv7-cgo)
		case $CROSS_CGO in 0 | no) continue ;; esac
		have arm-linux-gnueabihf-gcc gcc-arm-linux-gnueabihf || continue
		jpeg armhf
		build edge-agent-linux-armv7-cgo CGO_ENABLED=1 GOOS=linux GOARCH=arm GOARM=7 \
			CC=arm-linux-gnueabihf-gcc CGO_CFLAGS="$ARMHF_CGO_CFLAGS"
		;;
	*) die "unknown target $target (armv6 armv7 arm64 arm64-cgo armv7-cgo)" ;;
	esac
	TAGS=
	built+=("$OUT/edge-agent-linux-$target")
done

[ ${#built[@]} -eq 0 ] || ls -l "${built[@]}"
