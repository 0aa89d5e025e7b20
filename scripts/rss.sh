#!/usr/bin/env bash
# rss.sh: start `edge-agent demo`, wait SECONDS (default 60), then print its
# RSS, goroutine count and CPU time, and stop it. Used for docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
go build -o bin/edge-agent ./cmd/edge-agent
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
bin/edge-agent demo -status 127.0.0.1:0 -dir "$work/demo" -log-level warn >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 50); do grep -q 'status page' "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/out" | head -1)
sleep "$SECONDS_TO_RUN"
rss_kb=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
hwm_kb=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)
read -r utime stime < <(awk '{print $14, $15}' /proc/$pid/stat)
tck=$(getconf CLK_TCK)
gor=$(curl -s "$url/metrics" | awk '/^go_goroutines / {print $2}')
states=$(curl -s "$url/status" | grep -o '"state": "[a-z]*"' | sort | uniq -c | tr -s ' ' | tr '\n' ';')
kill -TERM $pid; wait $pid || true
printf 'after %ss: RSS %.1f MiB (peak %.1f MiB), CPU %.2fs, goroutines %s, states:%s\n' \
	"$SECONDS_TO_RUN" "$(echo "$rss_kb/1024" | bc -l)" "$(echo "$hwm_kb/1024" | bc -l)" \
	"$(echo "($utime+$stime)/$tck" | bc -l)" "$gor" "$states"
