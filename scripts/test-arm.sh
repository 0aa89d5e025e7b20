#!/usr/bin/env bash
# test-arm.sh ARCH [PACKAGES...]: run unit tests for a Pi architecture under
# qemu-user (make test-arm64 / make test-arm). ARCH is arm64, armv7 or armv6;
# PACKAGES default to ./sensors/... .
#
#   arm64  qemu-aarch64-static; with cgo (the microphone's null-backend test)
#          when aarch64-linux-gnu-gcc is installed
#   armv7  qemu-arm-static; with cgo when arm-linux-gnueabihf-gcc is installed
#          (64-bit time_t flags, see cross.sh)
#   armv6  qemu-arm-static -cpu arm1176 (a real Pi Zero/1 core), pure Go
#
# TEST_ARM_TIMEOUT (default 6m) bounds each test binary; one that times out
# runs once more (see gotest below). TEST_ARM_CGO=auto (default) uses cgo when the cross compiler exists,
# 1 requires it, 0 never uses it. Tests see EDGE_AGENT_EMULATED=1 and can
# allow for what qemu-user does differently (ENOSYS for ioctls it does not
# translate, no termios2 baud rates), and EDGE_AGENT_EXEC, the emulator
# command, which internal/reexec puts in front of a test binary that starts
# a copy of itself (docs/protocols/hardware.md §5.3). No -race: the race
# detector does not run under qemu-user.
#
# The cgo tests link libjpeg-turbo statically (internal/camjpeg), from the
# target's copy that scripts/cross-libjpeg.sh fetch unpacks; without it
# they use camjpeg's pure-Go codec (-tags nolibjpeg), or fail with
# TEST_ARM_CGO=1.
#
# This script installs nothing. Packages: qemu-user-static,
# gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf (Debian 12).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "test-arm.sh: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: scripts/test-arm.sh arm64|armv7|armv6 [packages...]"
arch=$1
shift
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./sensors/...)
TEST_ARM_CGO=${TEST_ARM_CGO:-auto}
ARMHF_CGO_CFLAGS="-O2 -g -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64"

need() { command -v "$1" >/dev/null || die "$1 not found; install the Debian package $2 (apt-get install -y $2)"; }
command -v go >/dev/null || die "go not found in PATH"

# usecgo CC PACKAGE: whether to build the tests with cgo.
usecgo() {
	case $TEST_ARM_CGO in
	0 | no) return 1 ;;
	1 | yes) need "$1" "$2"; return 0 ;;
	*)
		command -v "$1" >/dev/null && return 0
		echo "test-arm.sh: $1 not found (Debian package $2); testing without cgo" >&2
		return 1
		;;
	esac
}

# jpeg DEBARCH: the build tags for a cgo test, per the target's libjpeg.
tags=()
jpeg() {
	scripts/cross-libjpeg.sh check "$1" && return 0
	case $TEST_ARM_CGO in
	1 | yes) die "no libjpeg for $1: run scripts/cross-libjpeg.sh fetch $1" ;;
	esac
	echo "test-arm.sh: testing the pure-Go JPEG codec only (-tags nolibjpeg)" >&2
	tags=(-tags nolibjpeg)
}

envs=(GOOS=linux EDGE_AGENT_EMULATED=1)
case $arch in
arm64)
	need qemu-aarch64-static qemu-user-static
	exec_cmd="qemu-aarch64-static"
	envs+=(GOARCH=arm64)
	if usecgo aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu; then
		envs+=(CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc QEMU_LD_PREFIX=/usr/aarch64-linux-gnu)
		jpeg arm64
	else
		envs+=(CGO_ENABLED=0)
	fi
	;;
armv7)
	need qemu-arm-static qemu-user-static
	exec_cmd="qemu-arm-static"
	envs+=(GOARCH=arm GOARM=7)
	if usecgo arm-linux-gnueabihf-gcc gcc-arm-linux-gnueabihf; then
		envs+=(CGO_ENABLED=1 CC=arm-linux-gnueabihf-gcc "CGO_CFLAGS=$ARMHF_CGO_CFLAGS" QEMU_LD_PREFIX=/usr/arm-linux-gnueabihf)
		jpeg armhf
	else
		envs+=(CGO_ENABLED=0)
	fi
	;;
armv6)
	need qemu-arm-static qemu-user-static
	# A GOARM=7 (or Debian cgo) binary dies with SIGILL on this core; that
	# is the point of testing it.
	exec_cmd="qemu-arm-static -cpu arm1176"
	envs+=(GOARCH=arm GOARM=6 CGO_ENABLED=0)
	;;
*) die "unknown architecture $arch (want arm64, armv7 or armv6)" ;;
esac

envs+=("EDGE_AGENT_EXEC=$exec_cmd")

# qemu-user can deadlock a child it forks from a multithreaded program
# (seen once in CI: os/exec's fork in sensors/command waited 13 minutes
# for a child stuck before its exec). So each test binary gets 6 minutes
# (the slowest takes ~80 s here), and binaries that timed out — and only
# those, when nothing else failed — run once more, said loudly. Any other
# failure fails at once.
gotest() {
	env "${envs[@]}" go test -count=1 -timeout "${TEST_ARM_TIMEOUT:-6m}" "${tags[@]}" -exec "$exec_cmd" "$@"
}
echo "test-arm.sh: ${envs[*]} go test ${tags[*]} -exec '$exec_cmd' ${pkgs[*]}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
gotest "${pkgs[@]}" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] && exit 0
# A timed-out binary prints "panic: test timed out" before its package's
# "FAIL<tab>pkg" line; any other FAIL line is a real failure.
hung=$(awk -F'\t' '/^panic: test timed out/ { t = 1 } /^FAIL\t/ { if (t) print $2; else print "OTHER"; t = 0 }' "$out" | sort -u)
if [ -z "$hung" ] || grep -qx OTHER <<<"$hung"; then
	exit "$rc"
fi
echo "test-arm.sh: under qemu-user these test binaries timed out, once more each: $(echo $hung)" >&2
gotest $hung
