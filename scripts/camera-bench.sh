#!/usr/bin/env bash
# camera-bench.sh: the CPU time per frame of the agent's camera JPEG paths
# (internal/camjpeg, libjpeg-turbo and pure-Go codecs) next to C anchors run
# in the same script on the same input files:
#
#   thumbnail    JPEG -> 96 px high -> JPEG q80 (the Edge Impulse
#                low-resolution snapshot); anchors: vipsthumbnail (one
#                invocation over all frames, at vips' default concurrency and
#                at 1 thread, and that less its start-up); djpeg -scale 1/4
#                (the decode alone) is printed for information
#   yuyv-encode  YUYV frame -> JPEG q85 4:2:2; anchors: cjpeg -sample 2x1
#                (from PPM) and ffmpeg's mjpeg encoder from yuyv422
#   nv12-encode  NV12 frame -> JPEG q85 4:2:0; anchors: cjpeg -sample 2x2 and
#                ffmpeg's mjpeg encoder from nv12
#
# for 320x240, 640x480 and 1280x720, FRAMES frames each (default 100), of
# ffmpeg's testsrc2 pattern (the MJPEG frames at ffmpeg's -q:v 3, 4:2:0).
# CPU time is user+system of the process; for the tools started once per
# frame (cjpeg, djpeg) the start-up, measured on a 16x16 image, is taken
# off, and for ffmpeg the cost of a one-frame run. Each ratio is the agent's
# figure over the best (lowest) anchor of that row.
#
# Packages (Debian 12): libvips-tools, libjpeg-turbo-progs, ffmpeg; cgo
# builds need libjpeg62-turbo-dev. This script installs nothing.
#
# Environment: FRAMES (default 100), SIZES (default "320x240 640x480
# 1280x720"), REPS (rounds of each measurement, best counts; default 3),
# KEEP=1 keeps the input directory.
set -euo pipefail
cd "$(dirname "$0")/.."

FRAMES=${FRAMES:-100}
SIZES=${SIZES:-320x240 640x480 1280x720}
REPS=${REPS:-3}

die() { echo "camera-bench.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 not found; install the Debian package $2 (apt-get install -y $2)"; }
need vipsthumbnail libvips-tools
need cjpeg libjpeg-turbo-progs
need djpeg libjpeg-turbo-progs
need ffmpeg ffmpeg
need go golang

tmp=$(mktemp -d)
if [ "${KEEP:-0}" = 1 ]; then
	echo "camera-bench.sh: inputs kept in $tmp" >&2
else
	trap 'rm -rf "$tmp"' EXIT
fi

# cpu CMD...: prints the CPU seconds (user+system) CMD and its children use.
cpu() {
	local TIMEFORMAT='%U %S' t
	t=$({ time "$@" >/dev/null 2>&1; } 2>&1) || die "failed: $*"
	awk -v t="$t" 'BEGIN { split(t, a, " "); printf "%.6f", a[1] + a[2] }'
}

# best CMD...: the lowest of REPS cpu runs.
best() {
	local b="" t
	for _ in $(seq "$REPS"); do
		t=$(cpu "$@")
		b=$(awk -v a="$b" -v t="$t" 'BEGIN { print (a == "" || t < a) ? t : a }')
	done
	echo "$b"
}

# per CPU_SECONDS BASE_SECONDS N: milliseconds per frame.
per() { awk -v t="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.3f", (t - b) * 1000 / n }'; }

# each TOOL ARGS... -- FILES...: runs TOOL once per file (output discarded).
each() {
	local args=()
	while [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	for f in "$@"; do "${args[@]}" "$f" >/dev/null; done
}
export -f each

ffmpeg -v error -f lavfi -i testsrc2=size=16x16 -frames:v 1 -y "$tmp/tiny.ppm"
ffmpeg -v error -f lavfi -i testsrc2=size=16x16 -frames:v 1 -c:v mjpeg -q:v 3 -y "$tmp/tiny.jpg"
tiny_ppm=() tiny_jpg=()
for _ in $(seq "$FRAMES"); do tiny_ppm+=("$tmp/tiny.ppm"); tiny_jpg+=("$tmp/tiny.jpg"); done

results=$tmp/results
: >"$results"
for size in $SIZES; do
	d=$tmp/$size
	mkdir -p "$d/out"
	src=(-f lavfi -i "testsrc2=size=$size:rate=25" -frames:v "$FRAMES")
	ffmpeg -v error "${src[@]}" -c:v mjpeg -pix_fmt yuvj420p -q:v 3 "$d/frame-%03d.jpg"
	ffmpeg -v error "${src[@]}" "$d/frame-%03d.ppm"
	ffmpeg -v error "${src[@]}" -f rawvideo -pix_fmt yuyv422 "$d/frames.yuyv"
	ffmpeg -v error "${src[@]}" -f rawvideo -pix_fmt nv12 "$d/frames.nv12"
	jpgs=("$d"/frame-*.jpg)
	ppms=("$d"/frame-*.ppm)
	n=${#jpgs[@]}
	echo "camera-bench.sh: $size: $n frames, anchors" >&2

	t=$(best vipsthumbnail -s x96 -o "$d/out/%s.jpg[Q=80]" "${jpgs[@]}")
	echo "thumbnail $size vipsthumbnail $(per "$t" 0 "$n")" >>"$results"
	t=$(best env VIPS_CONCURRENCY=1 vipsthumbnail -s x96 -o "$d/out/%s.jpg[Q=80]" "${jpgs[@]}")
	echo "thumbnail $size vipsthumbnail-1thread $(per "$t" 0 "$n")" >>"$results"
	# The same less vips' start-up (one run on one 16x16 file): stricter
	# than the one-invocation figure, whatever FRAMES is.
	base=$(best env VIPS_CONCURRENCY=1 vipsthumbnail -s x96 -o "$d/out/%s.jpg[Q=80]" "$tmp/tiny.jpg")
	echo "thumbnail $size vipsthumbnail-1thread-less-startup $(per "$t" "$base" "$n")" >>"$results"
	base=$(best bash -c 'each djpeg -scale 1/4 -- "$@"' _ "${tiny_jpg[@]}")
	t=$(best bash -c 'each djpeg -scale 1/4 -- "$@"' _ "${jpgs[@]}")
	echo "thumbnail-decode-only $size djpeg-scale-1/4 $(per "$t" "$base" "$n")" >>"$results"

	base=$(best bash -c 'each cjpeg -quality 85 -sample 2x1 -- "$@"' _ "${tiny_ppm[@]}")
	t=$(best bash -c 'each cjpeg -quality 85 -sample 2x1 -- "$@"' _ "${ppms[@]}")
	echo "yuyv-encode $size cjpeg $(per "$t" "$base" "$n")" >>"$results"
	base=$(best bash -c 'each cjpeg -quality 85 -sample 2x2 -- "$@"' _ "${tiny_ppm[@]}")
	t=$(best bash -c 'each cjpeg -quality 85 -sample 2x2 -- "$@"' _ "${ppms[@]}")
	echo "nv12-encode $size cjpeg $(per "$t" "$base" "$n")" >>"$results"

	for fmt in yuyv422:yuyv-encode:frames.yuyv nv12:nv12-encode:frames.nv12; do
		IFS=: read -r pix op file <<<"$fmt"
		ff=(ffmpeg -v error -threads 1 -f rawvideo -pix_fmt "$pix" -s "$size" -i "$d/$file" -threads 1 -c:v mjpeg -q:v 3 -f null -)
		base=$(best "${ff[@]:0:13}" -frames:v 1 "${ff[@]:13}")
		t=$(best "${ff[@]}")
		echo "$op $size ffmpeg-mjpeg $(per "$t" "$base" $((n - 1)))" >>"$results"
	done
done

echo "camera-bench.sh: the agent's codecs (GOMAXPROCS=1)" >&2
GOMAXPROCS=1 go run ./scripts/camerabench -dir "$tmp" -sizes "$(echo $SIZES | tr ' ' ,)" -reps "$REPS" |
	awk '{ print $1, $2, $3, $4 }' >>"$results"

# Table: per op and size, the best anchor and each codec's ratio to it.
awk '
	$3 == "turbo" || $3 == "go" { agent[$1 " " $2, $3] = $4; next }
	$1 ~ /-decode-only$/ { info[$1 " " $2] = info[$1 " " $2] sprintf(" %s %.3f", $3, $4); next }
	{
		k = $1 " " $2
		anchors[k] = anchors[k] sprintf(" %s=%.3f", $3, $4)
		if (!(k in bestv) || $4 < bestv[k]) { bestv[k] = $4; bestn[k] = $3 }
		if (!(k in seen)) { seen[k] = 1; order[++n] = k }
	}
	END {
		printf "%-12s %-9s %-34s %9s %9s %7s %9s %7s\n", "op", "size", "best anchor", "ms/frame", "turbo", "ratio", "go", "ratio"
		for (i = 1; i <= n; i++) {
			k = order[i]; split(k, p, " ")
			t = agent[k, "turbo"]; g = agent[k, "go"]
			printf "%-12s %-9s %-34s %9.3f %9s %7s %9s %7s\n", p[1], p[2], bestn[k], bestv[k],
				t == "" ? "-" : sprintf("%.3f", t), t == "" ? "-" : sprintf("%.2f", t / bestv[k]),
				g == "" ? "-" : sprintf("%.3f", g), g == "" ? "-" : sprintf("%.2f", g / bestv[k])
		}
		print ""
		print "all anchors (ms/frame):"
		for (i = 1; i <= n; i++) print "  " order[i] ":" anchors[order[i]]
		for (k in info) print "  " k ":" info[k]
	}' "$results"
