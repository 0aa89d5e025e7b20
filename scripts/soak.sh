#!/usr/bin/env bash
# soak.sh: run `edge-agent demo` (all four links against their fakes, all
# synthetic sensors streaming) for DURATION, and every INTERVAL append RSS,
# Go heap, goroutines, CPU, sensor drops, spool depth and links up to a CSV;
# then plot it to PNG. Not part of CI. go_held_mib is what the Go runtime holds
# from the OS (sys − released): next to RSS it tells page retention (RSS
# follows go_held) from a leak outside Go (RSS climbs alone) or in the heap
# (heap_mib climbs too). With the profiler on (-pprof), the in-use heap is
# profiled after the first PROFILE_AFTER minutes and at the end, and the
# difference by allocation site goes to $OUT-heap-diff.txt.
#   DURATION=1h INTERVAL=60 OUT=soak scripts/soak.sh  →  soak.csv, soak.png
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-1h}
INTERVAL=${INTERVAL:-60}
OUT=${OUT:-soak}
PROFILE_AFTER=${PROFILE_AFTER:-5}
case $DURATION in
*h) secs=$(( ${DURATION%h} * 3600 )) ;; *m) secs=$(( ${DURATION%m} * 60 )) ;; *s) secs=${DURATION%s} ;; *) secs=$DURATION ;;
esac
go build -o bin/edge-agent ./cmd/edge-agent
go build -o bin/soakplot ./scripts/soakplot
work=$(mktemp -d); trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
bin/edge-agent demo -status 127.0.0.1:0 -pprof -dir "$work/demo" -log-level warn >"$work/out" 2>"$OUT.log" &
pid=$!
for _ in $(seq 100); do grep -q 'status page' "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/out" | head -1)
tck=$(getconf CLK_TCK)
# metric REGEX: the sum of the samples whose name{labels} starts with REGEX.
metric() { awk -v m="$1" '$1 ~ "^"m {s += $2} END {printf "%.0f", s}' "$work/metrics"; }
echo "minutes,rss_mib,heap_mib,go_held_mib,goroutines,cpu_pct,dropped,spool_items,links_up" >"$OUT.csv"
start=$(date +%s); prev_cpu=0; prev_t=$start
while :; do
	now=$(date +%s)
	curl -s "$url/metrics" >"$work/metrics"
	rss=$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' /proc/$pid/status)
	read -r ut st < <(awk '{print $14, $15}' /proc/$pid/stat)
	cpu=$(( ut + st ))
	dt=$(( now - prev_t )); [ $dt -gt 0 ] || dt=1
	pct=$(echo "($cpu - $prev_cpu) / $tck / $dt * 100" | bc -l)
	heap=$(echo "$(metric go_memstats_heap_inuse_bytes) / 1048576" | bc -l)
	held=$(echo "($(metric go_memstats_sys_bytes) - $(metric go_memstats_heap_released_bytes)) / 1048576" | bc -l)
	up=$(metric 'edge_agent_link_state{[^}]*state="up"')
	printf '%.1f,%s,%.1f,%.1f,%s,%.2f,%s,%s,%s\n' "$(echo "($now - $start)/60" | bc -l)" "$rss" "$heap" "$held" \
		"$(metric go_goroutines)" "$pct" "$(metric edge_agent_sensor_dropped_total)" \
		"$(metric edge_agent_spool_items)" "$up" >>"$OUT.csv"
	prev_cpu=$cpu; prev_t=$now
	if [ ! -e "$OUT-heap-start.pb.gz" ] && [ $(( now - start )) -ge $(( PROFILE_AFTER * 60 )) ]; then
		curl -s "$url/debug/pprof/heap?gc=1" >"$OUT-heap-start.pb.gz"
	fi
	[ $(( now - start )) -lt "$secs" ] || break
	sleep "$INTERVAL"
done
curl -s "$url/debug/pprof/heap?gc=1" >"$OUT-heap-end.pb.gz"
kill -TERM $pid; wait $pid || true
if [ -s "$OUT-heap-start.pb.gz" ]; then
	go tool pprof -sample_index=inuse_space -top -base "$OUT-heap-start.pb.gz" bin/edge-agent "$OUT-heap-end.pb.gz" >"$OUT-heap-diff.txt" 2>&1 || true
	echo "in-use heap growth by allocation site: $OUT-heap-diff.txt"
fi
bin/soakplot "$OUT.csv" "$OUT.png"
echo "wrote $OUT.csv and $OUT.png"; tail -1 "$OUT.csv"
