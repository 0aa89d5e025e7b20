#!/bin/sh
# /init of the virtual board (busybox sh, PID 1). It mounts the share the host
# gave it, runs every board case (a `go test -c -tags vboard` binary) and
# writes each one's output and exit code back, then powers the board off.
# What the cases may rely on is in scripts/vboard/README.md.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /tmp /share
mount -t devpts devpts /dev/pts
mount -t tmpfs -o size=256m tmpfs /tmp
# Loopback only (qemu runs with -nic none): the daemon case talks to the
# fake clouds on 127.0.0.1.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up

# ALSA looks up the audio group; a board without /etc/group warns.
printf 'root:x:0:\naudio:x:29:\n' >/etc/group
printf 'root:x:0:0:root:/tmp:/bin/sh\n' >/etc/passwd

say() { echo "vboard: $*"; }
off() { sync; poweroff -f; sleep 5; }

for m in virtio_pci 9pnet_virtio 9p; do modprobe "$m" || say "modprobe $m failed"; done
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /share; then
	say "cannot mount the share"
	off
fi
. /share/env # VBOARD_ARCH, VBOARD_RUN, VBOARD_TIMEOUT

# The serial adapter qemu emulates (usb-serial on qemu-xhci → ftdi_sio).
for m in xhci_pci ftdi_sio; do modprobe "$m" || say "modprobe $m failed"; done

# Binaries run from the guest's memory, not over 9p.
cp /share/bin/* /bin/ && chmod 0755 /bin/edge-agent* /bin/*.test 2>/dev/null
export VBOARD=1 VBOARD_SHARE=/share VBOARD_AGENT=/bin/edge-agent VBOARD_AGENT_CGO=/bin/edge-agent-cgo
export HOME=/tmp TMPDIR=/tmp
mkdir -p /share/results /share/ctl

boot_ms=$(cut -d' ' -f1 /proc/uptime)
echo "$boot_ms" >/share/results/boot-seconds
say "up after ${boot_ms}s, kernel $(uname -r)"

for t in /bin/*.test; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .test)
	say "case $name"
	start=$(cut -d' ' -f1 /proc/uptime)
	# Each case in its own working directory, so stray files do not meet.
	mkdir -p "/tmp/case-$name"
	(cd "/tmp/case-$name" && "$t" -test.v -test.timeout "${VBOARD_TIMEOUT:-6m}" -test.run "${VBOARD_RUN:-^TestBoard}") \
		>"/share/results/$name.log" 2>&1
	rc=$?
	end=$(cut -d' ' -f1 /proc/uptime)
	echo "$rc $start $end" >"/share/results/$name.rc"
	say "case $name exit $rc"
done
say "done"
echo done >/share/results/finished
off
