#!/usr/bin/env bash
# test.sh: everything `make test` (and so CI) checks: lint, race tests,
# short fuzzing, the systemd unit, the .deb, and the unit tests under ARM
# emulation. Steps whose tools are missing on a developer's machine say so
# and are skipped; .ci/run installs them, so CI runs every step.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "lint"
scripts/lint.sh

step "go test -race ./..."
# The web console's browser test (agent/console, headless Chromium) writes
# screenshots of its main views here; the log names the folder and files.
shots=${CONSOLE_SCREENSHOTS:-$PWD/build/console-screenshots}
CONSOLE_SCREENSHOTS=$shots go test -race -timeout 12m ./...
echo "console screenshots: $shots"
ls -l "$shots" 2>/dev/null || echo "  (none: the browser test did not run)"

step "short fuzzing of every fuzz target"
FUZZTIME=${FUZZTIME:-2000x} scripts/fuzz.sh

step "systemd unit"
scripts/check-unit.sh

step ".deb package"
if command -v dpkg-deb >/dev/null 2>&1; then
	scripts/test-deb.sh
else
	echo "skipped: dpkg-deb not installed"
fi

step "the unit tests under qemu-user: arm64 (cgo), armv7 (cgo), armv6 (pure Go, ARM1176)"
if command -v qemu-aarch64-static >/dev/null 2>&1 && command -v qemu-arm-static >/dev/null 2>&1; then
	# Unit tests only: the fault-injection suite (e2e) is an integration
	# run on the host.
	pkgs=$(go list ./... | grep -v '/e2e$')
	for arch in arm64 armv7 armv6; do
		scripts/test-arm.sh "$arch" $pkgs
	done
else
	echo "skipped: qemu-user-static not installed (apt-get install qemu-user-static gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf)"
fi

step "virtual boards: the sensors against real kernel drivers in qemu (scripts/vboard)"
if command -v qemu-system-aarch64 >/dev/null 2>&1 || [ "$(id -u)" = 0 ]; then
	for arch in ${VBOARD_ARCHS:-arm64 amd64}; do
		scripts/vboard/run.sh ARCH="$arch"
	done
else
	echo "skipped: qemu-system-arm not installed (make test-board installs what it needs when run as root)"
fi
