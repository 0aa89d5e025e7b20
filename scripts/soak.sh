#!/usr/bin/env bash
# soak.sh: run the fake clouds (`edge-agent sim -config`) and the agent
# (`edge-agent run` on the demo config they write: all four links, all
# synthetic sensors streaming) as two processes for DURATION, so the agent's
# memory is measured alone. Every INTERVAL it appends to a CSV the agent's RSS,
# Go heap in use, go_held_mib (what the Go runtime holds from the OS: sys −
# released), goroutines, CPU, sensor drops, spool depth and links up, and the
# fakes' RSS; then plots it to PNG. rss_anon_mib is RSS without the binary's
# file-backed pages (which grow as code paths first run, up to its size). Next to RSS, go_held tells page retention
# (RSS follows go_held) from a leak outside Go (RSS climbs alone) or in the
# heap (heap_mib climbs too). The in-use heap is profiled after PROFILE_AFTER
# minutes and at the end, one allocation in MEMPROFILERATE bytes sampled
# (default 64 KiB, finer than Go's 512 KiB so that the diff is not noise); the
# growth by allocation site goes to $OUT-heap-diff.txt. Not part of CI.
#   DURATION=1h INTERVAL=60 OUT=soak scripts/soak.sh  →  soak.csv, soak.png
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-1h}
INTERVAL=${INTERVAL:-60}
OUT=${OUT:-soak}
PROFILE_AFTER=${PROFILE_AFTER:-5}
MEMPROFILERATE=${MEMPROFILERATE:-65536}
case $DURATION in
*h) secs=$(( ${DURATION%h} * 3600 )) ;; *m) secs=$(( ${DURATION%m} * 60 )) ;; *s) secs=${DURATION%s} ;; *) secs=$DURATION ;;
esac
rm -f "$OUT-heap-start.pb.gz" "$OUT-heap-end.pb.gz" "$OUT-heap-diff.txt"
go build -o bin/edge-agent ./cmd/edge-agent
go build -o bin/soakplot ./scripts/soakplot
work=$(mktemp -d)
simpid=; pid=
trap 'kill $pid $simpid 2>/dev/null || true; rm -rf "$work"' EXIT
bin/edge-agent sim -config "$work/demo" -pprof >"$work/sim.out" 2>"$OUT-sim.log" &
simpid=$!
for _ in $(seq 100); do grep -q '"config"' "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep '"config"' "$work/sim.out" | grep -o '"status":"http://[0-9.:]*' | cut -d'"' -f4)
[ -n "$url" ] || { echo "soak: the fakes wrote no config" >&2; exit 1; }
sed -i 's/^\(    level:\) info$/\1 warn/' "$work/demo/demo-config.yaml"
GODEBUG=memprofilerate=$MEMPROFILERATE bin/edge-agent run -config "$work/demo/demo-config.yaml" >"$work/agent.out" 2>"$OUT.log" &
pid=$!
for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
tck=$(getconf CLK_TCK)
# metric REGEX: the sum of the samples whose name{labels} starts with REGEX.
metric() { awk -v m="$1" '$1 ~ "^"m {s += $2} END {printf "%.0f", s}' "$work/metrics"; }
rss() { awk -v f="${2:-VmRSS}" '$1 == f":" {printf "%.1f", $2/1024}' "/proc/$1/status"; }
echo "minutes,rss_mib,rss_anon_mib,heap_mib,go_held_mib,goroutines,cpu_pct,dropped,spool_items,links_up,fakes_rss_mib" >"$OUT.csv"
start=$(date +%s); prev_cpu=0; prev_t=$start
while :; do
	now=$(date +%s)
	curl -s "$url/metrics" >"$work/metrics"
	read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat")
	cpu=$(( ut + st ))
	dt=$(( now - prev_t )); [ $dt -gt 0 ] || dt=1
	pct=$(echo "($cpu - $prev_cpu) / $tck / $dt * 100" | bc -l)
	heap=$(echo "$(metric go_memstats_heap_inuse_bytes) / 1048576" | bc -l)
	held=$(echo "($(metric go_memstats_sys_bytes) - $(metric go_memstats_heap_released_bytes)) / 1048576" | bc -l)
	up=$(metric 'edge_agent_link_state{[^}]*state="up"')
	printf '%.1f,%s,%s,%.1f,%.1f,%s,%.2f,%s,%s,%s,%s\n' "$(echo "($now - $start)/60" | bc -l)" "$(rss $pid)" "$(rss $pid RssAnon)" "$heap" "$held" \
		"$(metric go_goroutines)" "$pct" "$(metric edge_agent_sensor_dropped_total)" \
		"$(metric edge_agent_spool_items)" "$up" "$(rss $simpid)" >>"$OUT.csv"
	prev_cpu=$cpu; prev_t=$now
	if [ ! -e "$OUT-heap-start.pb.gz" ] && [ $(( now - start )) -ge $(( PROFILE_AFTER * 60 )) ]; then
		curl -s "$url/debug/pprof/heap?gc=1" >"$OUT-heap-start.pb.gz"
	fi
	[ $(( now - start )) -lt "$secs" ] || break
	sleep "$INTERVAL"
done
curl -s "$url/debug/pprof/heap?gc=1" >"$OUT-heap-end.pb.gz"
kill -TERM $pid; wait $pid || true
kill -TERM $simpid; wait $simpid || true
if [ -s "$OUT-heap-start.pb.gz" ]; then
	go tool pprof -sample_index=inuse_space -top -base "$OUT-heap-start.pb.gz" bin/edge-agent "$OUT-heap-end.pb.gz" >"$OUT-heap-diff.txt" 2>&1 || true
	echo "in-use heap growth by allocation site: $OUT-heap-diff.txt"
fi
bin/soakplot "$OUT.csv" "$OUT.png"
echo "wrote $OUT.csv and $OUT.png"; tail -1 "$OUT.csv"
