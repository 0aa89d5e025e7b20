#!/usr/bin/env bash
# check-unit.sh: the shipped systemd unit must load without a single warning
# (systemd-analyze verify exits 0 even for a misspelt key, so any output
# fails) and score at most 2.5 (threshold 25, in tenths) in the offline security analysis;
# the same with the watch_dir drop-in (deploy/watch-dir.conf) applied.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "skipped: systemd-analyze not installed (apt-get install systemd)"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/edge-agent" ./cmd/edge-agent
sed "s|^ExecStart=/usr/bin/edge-agent|ExecStart=$tmp/edge-agent|" deploy/edge-agent.service > "$tmp/edge-agent.service"
out=$(systemd-analyze verify --man=no "$tmp/edge-agent.service" 2>&1 || true)
if [ -n "$out" ]; then
	echo "systemd-analyze verify:"; echo "$out"; exit 1
fi
# The documented drop-in for a watch_dir elsewhere must load cleanly too: the
# unit is found through SYSTEMD_UNIT_PATH, so edge-agent.service.d/ next to it
# is applied.
mkdir -p "$tmp/units/edge-agent.service.d"
cp "$tmp/edge-agent.service" "$tmp/units/"
cp deploy/watch-dir.conf "$tmp/units/edge-agent.service.d/"
out=$(SYSTEMD_UNIT_PATH="$tmp/units:" systemd-analyze verify --man=no edge-agent.service 2>&1 || true)
if [ -n "$out" ]; then
	echo "systemd-analyze verify (with deploy/watch-dir.conf):"; echo "$out"; exit 1
fi
# ...and is really read: a probe key appended to it must be reported.
printf 'EdgeAgentDropInProbe=1\n' >> "$tmp/units/edge-agent.service.d/watch-dir.conf"
# (Output first, then grep: under pipefail a grep -q that exits early
# fails the pipeline with SIGPIPE.)
verify=$(SYSTEMD_UNIT_PATH="$tmp/units:" systemd-analyze verify --man=no edge-agent.service 2>&1 || true)
if ! grep -q 'watch-dir.conf.*EdgeAgentDropInProbe' <<<"$verify"; then
	echo "systemd-analyze verify did not read the drop-in"; exit 1
fi
systemd-analyze security --offline=true --threshold=25 "$tmp/edge-agent.service" | tail -1
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers --dry-run "$PWD/deploy/sysusers.conf" >/dev/null 2>&1
fi
echo "unit ok"
