#!/usr/bin/env bash
# wear.sh: what a demo-like run writes to the board's storage (SD-card wear).
# It runs the fake clouds (`edge-agent sim -config`) and the agent (`edge-agent
# run` on the demo config they write: all four links, the synthetic sensors,
# Frame.io stills every 10 s, Edge Impulse samples as the fake Studio asks) as
# two processes, with the state directory on the disk under WEAR_DIR, for
# MINUTES (default 10) after a WARMUP (default 20 s). It reports per hour:
#   - bytes written: the agent's write_bytes from /proc/PID/io (what it sent
#     towards the block device; file data only: the file system's journal and
#     metadata blocks are written by the kernel and are not counted), and
#     cancelled_write_bytes (dirtied, then deleted before writeback: never
#     reached the disk);
#   - fsync and fdatasync calls, which force a journal commit each (on an SD
#     card the cost that counts, more than the bytes), and files created;
#   - both broken down by path under the state directory (ids folded), with
#     the bytes written per path,
# counted by strace (syscalls filtered in the kernel with --seccomp-bpf, so
# the agent runs at its normal speed). Without strace only the totals of
# /proc/PID/io are shown. Not part of CI; the figures are in docs/BENCHMARKS.md.
#   scripts/wear.sh 10            → a markdown summary on stdout
# WEAR_DIR must be on a disk file system: a tmpfs counts no write_bytes.
# WEAR_KEEP=1 keeps the work directory (the trace, the logs); WEAR_BIN runs
# that edge-agent binary instead of building ./cmd/edge-agent (to measure an
# older commit: build it from `git archive COMMIT`), WEAR_LABEL names it in
# the summary (default: the checkout's commit).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
WARMUP=${WARMUP:-20}
mkdir -p build
WEAR_DIR=${WEAR_DIR:-build}
work=$(mktemp -d "$WEAR_DIR/wear.XXXXXX")
work=$(cd "$work" && pwd)
fstype=$(stat -f -c %T "$work")
[ "$fstype" != tmpfs ] || echo "wear: $work is on tmpfs: write_bytes will be 0; set WEAR_DIR to a directory on a disk" >&2
bin=${WEAR_BIN:-bin/edge-agent}
[ -n "${WEAR_BIN:-}" ] || go build -o bin/edge-agent ./cmd/edge-agent
rev=${WEAR_LABEL:-$(git rev-parse --short HEAD 2>/dev/null || true)}
simpid=; pid=
trap 'kill $pid $simpid 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${WEAR_KEEP:-}" ] || rm -rf "$work"' EXIT
"$bin" sim -config "$work/demo" >"$work/sim.out" 2>"$work/sim.log" &
simpid=$!
for _ in $(seq 100); do grep -q '"config"' "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep '"config"' "$work/sim.out" | grep -o '"status":"http://[0-9.:]*' | cut -d'"' -f4)
[ -n "$url" ] || { echo "wear: the fakes wrote no config" >&2; exit 1; }
state=$(awk '$1 == "state_dir:" {print $2}' "$work/demo/demo-config.yaml")
state=${state:-$work/demo/state}
case $state in /*) ;; *) state=$PWD/$state ;; esac

cmd=("$bin" run -config "$work/demo/demo-config.yaml")
if command -v strace >/dev/null; then
	# sh writes its pid, then execs the agent in its place (same pid).
	strace -f --seccomp-bpf -qq -y -ttt -e signal=none \
		-e trace=fsync,fdatasync,sync_file_range,syncfs,openat,renameat,renameat2,unlinkat,write,pwrite64,writev,copy_file_range,sendfile \
		-o "$work/trace" -- sh -c 'echo $$ >"$0"; exec "$@"' "$work/agent.pid" "${cmd[@]}" >"$work/agent.out" 2>"$work/agent.log" &
	tracer=$!
	for _ in $(seq 100); do [ -s "$work/agent.pid" ] && break; sleep 0.1; done
	pid=$(cat "$work/agent.pid")
else
	echo "wear: strace is not installed: fsync counts and the breakdown by path are left out" >&2
	"${cmd[@]}" >"$work/agent.out" 2>"$work/agent.log" &
	pid=$!; tracer=$pid
fi
for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
sleep "$WARMUP"
io() { awk -v k="$1:" '$1 == k {print $2}' "$work/io.$2"; }
delivered() { curl -s "$url/status" | tr -d ' \n' | grep -o '"delivered":[0-9]*' | cut -d: -f2 | paste -sd+ | bc; }
cp "/proc/$pid/io" "$work/io.0"; t0=$(date +%s.%N); d0=$(delivered)
sleep "$(echo "$MINUTES * 60" | bc -l)"
cp "/proc/$pid/io" "$work/io.1"; t1=$(date +%s.%N); d1=$(delivered)
kill -TERM "$pid"; wait "$tracer" || true
kill -TERM "$simpid"; wait "$simpid" || true

secs=$(echo "$t1 - $t0" | bc -l)
perh() { echo "($1) * 3600 / $secs" | bc -l; }
mib() { printf '%.2f' "$(echo "$1 / 1048576" | bc -l)"; }
wb=$(( $(io write_bytes 1) - $(io write_bytes 0) ))
cb=$(( $(io cancelled_write_bytes 1) - $(io cancelled_write_bytes 0) ))
echo "## wear: $(printf '%.1f' "$(echo "$secs / 60" | bc -l)") min of the demo workload (${rev:-edge-agent}, state dir on $fstype)"
echo
echo "| per hour | value |"
echo "|---|---|"
echo "| write_bytes (file data towards the disk) | $(mib "$(perh $wb)") MiB |"
echo "| cancelled_write_bytes (deleted before writeback) | $(mib "$(perh $cb)") MiB |"
echo "| spool items delivered (all links) | $(printf '%.0f' "$(perh "$d1 - $d0")") |"
[ -s "$work/trace" ] || exit 0

# The trace in the window, one line per call: "CALL PATH BYTES", the path
# relative to the state dir, ids and temp-file suffixes folded. A call strace
# split in two ("<unfinished ...>", "<... resumed>") is counted where it
# started, with the result of its second half.
awk -v t0="$t0" -v t1="$t1" -v st="$state/" '
	function rel(p) {
		if (p "/" == st) return "."
		if (index(p, st) == 1) return substr(p, length(st) + 1)
		return "(outside) " p
	}
	function emit(call, path, res) {
		n = 0
		if (call ~ /write|copy_file_range|sendfile/) {
			if (!match(res, /= [0-9]+$/)) return
			n = substr(res, RSTART + 2); call = "write"
		}
		if (call == "openat") { if (!match(res, /= [0-9]+<[^>]*>$/)) return; call = "create" }
		print call, path, n
	}
	$2 < t0 || $2 > t1 { next }
	$3 ~ /^<\.\.\./ { if ($1 in pend) { split(pend[$1], a, SUBSEP); delete pend[$1]; emit(a[1], a[2], $0) } next }
	{
		call = $3; sub(/\(.*/, "", call)
		line = $0
		if (call == "openat") {
			if (line !~ /O_CREAT/) next
			if (!match(line, /"[^"]*"/)) next
			path = substr(line, RSTART + 1, RLENGTH - 2)
		} else if (call ~ /^(renameat2?|unlinkat)$/) {
			path = ""; while (match(line, /"[^"]*"/)) { path = substr(line, RSTART + 1, RLENGTH - 2); line = substr(line, RSTART + RLENGTH) }
		} else {
			if (call == "copy_file_range") sub(/<[^>]*>/, "", line) # the second fd is the one written
			if (!match(line, /[( ][0-9]+<\/[^>]*>/)) next # the fd of a file, not a socket, nor text in the data
			path = substr(line, RSTART, RLENGTH - 1); sub(/^[^<]*</, "", path)
		}
		path = rel(path)
		if ($0 ~ /<unfinished \.\.\.>$/) { pend[$1] = call SUBSEP path; next }
		emit(call, path, $0)
	}' "$work/trace" |
	sed -E 's/[0-9]{19}-[0-9a-f]{12}/ID/g; s/\.tmp-[0-9]+/.tmp-N/g; s/sample-[0-9]+\.tmp/sample-N.tmp/g' >"$work/calls"
sum() { awk -v c="$1" '$1 ~ c {n++} END {print n + 0}' "$work/calls"; }
fs=$(sum '^(fsync|fdatasync|sync_file_range|syncfs)$')
echo "| fsync + fdatasync calls | $(printf '%.0f' "$(perh "$fs")") |"
echo "| files created | $(printf '%.0f' "$(perh "$(sum '^create$')")") |"
echo "| renames | $(printf '%.0f' "$(perh "$(sum '^renameat2?$')")") |"
echo
echo "By path (per hour; ID is a spool item, N a temp file):"
echo
echo "| path | fsyncs | files created | KiB written |"
echo "|---|---|---|---|"
awk -v s="$secs" '
	{ p = $2; paths[p] = 1 }
	$1 ~ /^(fsync|fdatasync|sync_file_range|syncfs)$/ { f[p]++ }
	$1 == "create" { c[p]++ }
	$1 ~ /write/ { b[p] += $3 }
	END {
		for (p in paths) if (f[p] + c[p] + b[p] > 0)
			printf "| %s | %.0f | %.0f | %.0f |\n", p, f[p] * 3600 / s, c[p] * 3600 / s, b[p] * 3600 / s / 1024
	}' "$work/calls" |
	sort -t'|' -k3,3nr -k5,5nr
