#!/usr/bin/env bash
# test.sh: everything `make test` (and so CI) checks. Steps whose tools are
# missing on a developer's machine say so and are skipped; .ci/run installs
# them, so CI runs every step.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "lint"
scripts/lint.sh

step "go test -race ./..."
go test -race -timeout 12m ./...

step "short fuzzing of every fuzz target"
FUZZTIME=${FUZZTIME:-3s} scripts/fuzz.sh

step "systemd unit"
scripts/check-unit.sh

step ".deb package"
if command -v dpkg-deb >/dev/null 2>&1; then
	scripts/test-deb.sh
else
	echo "skipped: dpkg-deb not installed"
fi

step "sensors under qemu-aarch64"
if command -v qemu-aarch64-static >/dev/null 2>&1; then
	scripts/test-arm.sh arm64 ./sensors/...
else
	echo "skipped: qemu-aarch64-static not installed (apt-get install qemu-user-static)"
fi
