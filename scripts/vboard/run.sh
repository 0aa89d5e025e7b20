#!/usr/bin/env bash
# run.sh [ARCH=arm64|amd64] [PKGS="./sensors/iio ..."] [RUN=regex]: the virtual
# board (make test-board). Boots Debian's own kernel in qemu with real drivers
# that need no hardware (vivid, snd-aloop, uhid sensor hub, ftdi_sio, cdc_acm,
# i2c-stub), runs every package's board cases (files tagged `vboard`) inside it
# and exits non-zero when a case failed. See scripts/vboard/README.md.
#
# Everything comes from Debian's archive and is cached in $VBOARD_CACHE
# (default build/vboard/cache): the kernel (the version linux-image-ARCH
# depends on at fetch time, since Debian drops old ABIs), busybox-static,
# glibc, libasound2 and alsa-utils of the guest's architecture. As root on a
# machine without the tools it installs them with apt-get.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

ARCH=${ARCH:-arm64}
PKGS=${PKGS:-}
RUN=${RUN:-}
for a in "$@"; do
	case $a in
	ARCH=*) ARCH=${a#ARCH=} ;;
	PKGS=*) PKGS=${a#PKGS=} ;;
	RUN=*) RUN=${a#RUN=} ;;
	*) echo "run.sh: unknown argument $a (ARCH=, PKGS=, RUN=)" >&2; exit 2 ;;
	esac
done
CACHE=${VBOARD_CACHE:-$root/build/vboard/cache}
WORK=$root/build/vboard/$ARCH
TIMEOUT=${VBOARD_TIMEOUT:-6m}       # one case, inside the guest
VM_TIMEOUT=${VBOARD_VM_TIMEOUT:-900} # the whole boot, in seconds
if [ -n "${VBOARD_BENCH:-}" ]; then # the benchmark cases take longer
	TIMEOUT=${VBOARD_TIMEOUT:-20m} VM_TIMEOUT=${VBOARD_VM_TIMEOUT:-1800}
fi

die() { echo "run.sh: $*" >&2; exit 1; }
# One board per architecture at a time: a second run waits for the first
# instead of wiping its share.
mkdir -p "$root/build/vboard"
exec 9>"$root/build/vboard/$ARCH.lock"
flock 9
log() { printf 'vboard[%s]: %s\n' "$ARCH" "$*"; }
now() { date +%s.%N; }
t0=$(now)

case $ARCH in
arm64)
	debarch=arm64 qemu=qemu-system-aarch64 qpkg=qemu-system-arm triplet=aarch64-linux-gnu
	cc=aarch64-linux-gnu-gcc ccpkg=gcc-aarch64-linux-gnu
	machine=(-machine virt -cpu cortex-a53) console=ttyAMA0
	;;
amd64)
	debarch=amd64 qemu=qemu-system-x86_64 qpkg=qemu-system-x86 triplet=x86_64-linux-gnu
	cc=gcc ccpkg=gcc
	machine=(-machine q35 -cpu max) console=ttyS0
	;;
*) die "ARCH must be arm64 or amd64, not $ARCH" ;;
esac
hostarch=$(dpkg --print-architecture 2>/dev/null || echo amd64)

# ---- tools ----------------------------------------------------------------
missing=()
for t in "$qemu:$qpkg" "depmod:kmod" "cpio:cpio" "dpkg-deb:dpkg" "$cc:$ccpkg" "go:golang"; do
	command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null ||
		die "missing tools; install: apt-get install ${missing[*]}"
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$debarch" != "$hostarch" ] && ! dpkg --print-foreign-architectures | grep -qx "$debarch"; then
	[ "$(id -u)" = 0 ] || die "apt does not know $debarch; run: dpkg --add-architecture $debarch && apt-get update"
	log "adding the $debarch architecture to apt"
	dpkg --add-architecture "$debarch"
	apt-get update -qq
fi

# ---- packages (cached) ----------------------------------------------------
debs=$CACHE/$ARCH/debs
mkdir -p "$debs"
if [ ! -f "$debs/.complete" ]; then
	kpkg=$(apt-cache depends "linux-image-$debarch:$debarch" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^:]*\).*/\1/p' | head -1)
	if [ -z "$kpkg" ]; then
		apt-get update -qq
		kpkg=$(apt-cache depends "linux-image-$debarch:$debarch" | sed -n 's/^ *Depends: \(linux-image-[^:]*\).*/\1/p' | head -1)
	fi
	[ -n "$kpkg" ] || die "cannot tell which kernel linux-image-$debarch depends on"
	log "fetching $kpkg and the guest's user space"
	rm -f "$debs"/*.deb
	# apt drops to the _apt user when it can; a cache it cannot write is fine.
	(cd "$debs" && apt-get download -q=2 "$kpkg:$debarch" "busybox-static:$debarch" "libc6:$debarch" \
		"libasound2:$debarch" libasound2-data "alsa-utils:$debarch" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
	ls "$debs"/linux-image-*.deb "$debs"/busybox-static_*.deb >/dev/null || die "download failed"
	touch "$debs/.complete"
fi

# ---- the guest's root file system (cached per package set) ----------------
sysroot=$CACHE/$ARCH/sysroot
stamp=$(cd "$debs" && ls *.deb | sort | sha256sum | cut -c1-16)
if [ "$(cat "$sysroot/.stamp" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "$sysroot" && mkdir -p "$sysroot"
	for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$sysroot"; done
	# The package leaves modules.dep to its postinst.
	depmod -b "$sysroot" "$(ls "$sysroot/lib/modules" | head -1)"
	echo "$stamp" >"$sysroot/.stamp"
fi
kver=$(ls "$sysroot/lib/modules" | head -1)
[ -n "$kver" ] || die "no kernel modules in $sysroot"

# The modules the cases use (scripts/vboard/README.md lists them) with
# everything they depend on.
want=(virtio_pci 9pnet_virtio 9p xhci_pci xhci_plat_hcd ftdi_sio cdc_acm
	vivid snd_aloop snd_dummy uhid hid_generic hid_sensor_hub hid_sensor_accel_3d
	dummy_hcd libcomposite usb_f_acm usb_f_serial i2c_stub i2c_dev inv_mpu6050_i2c st_accel_i2c)
# The busybox applets the init script and the cases use (busybox --install
# would have to run on the guest's architecture).
applets=(sh ash mount umount mkdir cat cp mv rm ln ls echo sleep poweroff reboot modprobe insmod rmmod
	lsmod depmod chmod chown basename dirname cut grep sed awk head tail tr wc sync uname dmesg
	i2cset i2cget i2cdetect find xargs test "[" printf kill killall ps env true false date mknod
	stty od hexdump dd timeout seq sort tee touch readlink realpath stat ip ifconfig pidof nohup)
base=$CACHE/$ARCH/initrd-$(echo "$stamp ${want[*]} ${applets[*]}" | sha256sum | cut -c1-16).cpio
if [ ! -f "$base" ]; then
	log "building the initramfs for $kver"
	fs=$(mktemp -d)
	trap 'rm -rf "$fs"' EXIT
	mkdir -p "$fs"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,share,etc,lib/modules/"$kver"}
	cp "$sysroot/bin/busybox" "$fs/bin/busybox"
	for applet in "${applets[@]}"; do
		ln -sf busybox "$fs/bin/$applet"
	done
	# Modules and their dependencies, resolved against the real modules.dep.
	for m in "${want[@]}"; do
		# Some exist on one architecture only (snd_dummy, the i2c drivers).
		modprobe -d "$sysroot" -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"{print $2}' || true
	done | sort -u | while read -r ko; do
		rel=${ko#"$sysroot"}
		mkdir -p "$fs$(dirname "$rel")"
		cp "$ko" "$fs$rel"
	done
	cp "$sysroot/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$fs/lib/modules/$kver/" 2>/dev/null || true
	depmod -b "$fs" "$kver"
	# glibc, libasound and alsa-utils for the cgo agent and for playing tones.
	mkdir -p "$fs/lib/$triplet" "$fs/usr/lib/$triplet" "$fs/usr/share"
	cp -a "$sysroot/lib/$triplet"/. "$fs/lib/$triplet/"
	cp -a "$sysroot/usr/lib/$triplet"/libasound* "$fs/usr/lib/$triplet/"
	[ -d "$sysroot/lib64" ] && cp -a "$sysroot/lib64" "$fs/"
	cp -a "$sysroot/lib"/ld-linux* "$fs/lib/" 2>/dev/null || true
	cp -a "$sysroot/usr/share/alsa" "$fs/usr/share/"
	for b in aplay arecord amixer; do cp "$sysroot/usr/bin/$b" "$fs/usr/bin/"; done
	(cd "$fs" && find . | cpio -o -H newc --quiet) >"$base.tmp"
	mv "$base.tmp" "$base"
	rm -rf "$fs"
	trap - EXIT
fi
kernel=$CACHE/$ARCH/kernel-$kver
if [ ! -f "$kernel" ]; then
	if [ "$ARCH" = amd64 ]; then
		# The ELF vmlinux inside the bzImage boots in a quarter of the time
		# (qemu loads it through the PVH note; no decompression under TCG).
		scripts/vboard/extract-vmlinux.sh "$sysroot/boot/vmlinuz-$kver" >"$kernel.tmp"
	else
		cp "$sysroot/boot/vmlinuz-$kver" "$kernel.tmp"
	fi
	mv "$kernel.tmp" "$kernel"
fi
t_prep=$(now)

# ---- binaries: the agent and every package's board cases ------------------
rm -rf "$WORK" && mkdir -p "$WORK/share/bin" "$WORK/share/ctl" "$WORK/share/results"
bin=$WORK/share/bin
goenv=(GOOS=linux GOARCH="$ARCH")
cgoenv=(CGO_ENABLED=1 CC="$cc")
[ "$ARCH" = "$hostarch" ] && cgoenv=(CGO_ENABLED=1)
ldflags="-s -w"
# internal/camjpeg links libjpeg-turbo statically into the cgo builds: the
# host's libjpeg62-turbo-dev for a native guest, for arm64 the copy that
# scripts/cross-libjpeg.sh unpacks under build/cross-libjpeg (CI fetches it
# beforehand; a fresh machine fetches it here). Without either the cgo
# binaries get the pure-Go codec (-tags nolibjpeg). The tags are set here,
# overriding the Makefile's GOFLAGS, which only knows about the host.
jpegtags=
if [ "$ARCH" = "$hostarch" ]; then
	printf '#include <stdio.h>\n#include <jpeglib.h>\n' | "$cc" -E -x c - >/dev/null 2>&1 ||
		jpegtags=nolibjpeg jpegwhy="libjpeg62-turbo-dev is not installed"
elif ! scripts/cross-libjpeg.sh check "$ARCH" 2>/dev/null; then
	log "fetching libjpeg-turbo for $ARCH (scripts/cross-libjpeg.sh fetch $ARCH)"
	scripts/cross-libjpeg.sh fetch "$ARCH" || true
	scripts/cross-libjpeg.sh check "$ARCH" 2>/dev/null ||
		jpegtags=nolibjpeg jpegwhy="scripts/cross-libjpeg.sh fetch $ARCH failed"
fi
[ -z "$jpegtags" ] ||
	log "no libjpeg-turbo for $ARCH ($jpegwhy): edge-agent-cgo and the cgo cases use the pure-Go JPEG codec (-tags nolibjpeg)"
log "building the agent and the cases"
env "${goenv[@]}" CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/edge-agent" ./cmd/edge-agent
env "${goenv[@]}" "${cgoenv[@]}" go build -trimpath -tags "$jpegtags" -ldflags "$ldflags" -o "$bin/edge-agent-cgo" ./cmd/edge-agent
if [ -z "$PKGS" ]; then
	PKGS=$(grep -rl --include='*_test.go' --exclude-dir=build --exclude-dir=.git '^//go:build.*\bvboard\b' . | xargs -r -n1 dirname | sort -u | tr '\n' ' ')
fi
[ -n "$PKGS" ] || die "no package has board cases (//go:build vboard)"
ncases=0
for p in $PKGS; do
	name=$(echo "${p#./}" | tr '/' '-')
	# Cases with cgo in their build line need the guest's C library (the
	# microphone); the rest are static.
	if grep -lq '^//go:build.*\bvboard\b.*\bcgo\b' "$p"/*_test.go 2>/dev/null; then
		env "${goenv[@]}" "${cgoenv[@]}" go test -c -tags "vboard${jpegtags:+,$jpegtags}" -ldflags "$ldflags" -o "$bin/$name.test" "$p"
	else
		env "${goenv[@]}" CGO_ENABLED=0 go test -c -tags vboard -ldflags "$ldflags" -o "$bin/$name.test" "$p"
	fi
	[ -f "$bin/$name.test" ] && ncases=$((ncases + 1))
done
[ "$ncases" -gt 0 ] || die "no case binaries were built for: $PKGS"
# The init script changes more often than the cached archive: it goes in a
# second archive that the kernel lays over the first.
initfs=$WORK/initfs
mkdir -p "$initfs"
install -m 0755 scripts/vboard/init.sh "$initfs/init"
initrd=$WORK/initrd.cpio
{ cat "$base"; (cd "$initfs" && echo init | cpio -o -H newc --quiet); } >"$initrd"
cat >"$WORK/share/env" <<EOF
export VBOARD_ARCH=$ARCH VBOARD_TIMEOUT=$TIMEOUT
export VBOARD_RUN='${RUN:-^TestBoard}'
EOF
# Opt-in benchmark cases (TestBoardCameraCPU) run when VBOARD_BENCH is set.
[ -z "${VBOARD_BENCH:-}" ] || echo "export VBOARD_BENCH='$VBOARD_BENCH'" >>"$WORK/share/env"
t_build=$(now)

# ---- the host side of the USB serial adapter ------------------------------
sock=$WORK/serial.sock
serialdev=()
feeder_pid=
if [ -d scripts/vboard/hostserial ]; then
	go build -o "$WORK/hostserial" ./scripts/vboard/hostserial
	"$WORK/hostserial" -socket "$sock" -ctl "$WORK/share/ctl" 2>"$WORK/hostserial.log" &
	feeder_pid=$!
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	[ -S "$sock" ] || die "hostserial did not listen on $sock (see $WORK/hostserial.log)"
	serialdev=(-device qemu-xhci,id=xhci -chardev "socket,id=ser0,path=$sock,reconnect=1" -device usb-serial,bus=xhci.0,chardev=ser0)
fi
cleanup() { [ -n "$feeder_pid" ] && kill "$feeder_pid" 2>/dev/null && wait "$feeder_pid" 2>/dev/null; true; }
trap cleanup EXIT

# ---- boot -----------------------------------------------------------------
log "booting $kver ($ncases case binaries)"
set +e
timeout --foreground -k 10 "$VM_TIMEOUT" "$qemu" "${machine[@]}" -accel tcg,thread=multi -smp 2 -m 1024 \
	-nographic -no-reboot -nic none -monitor none -serial stdio \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=$console rdinit=/init panic=-1 quiet loglevel=4" \
	-fsdev "local,id=share,path=$WORK/share,security_model=none" -device virtio-9p-pci,fsdev=share,mount_tag=share \
	"${serialdev[@]}" </dev/null >"$WORK/console.log" 2>&1
qrc=$?
set -e
t_end=$(now)
cleanup

# ---- results --------------------------------------------------------------
res=$WORK/share/results
pass=0 fail=0 skip=0 bad=0
for rcf in "$res"/*.rc; do
	[ -e "$rcf" ] || continue
	name=$(basename "$rcf" .rc)
	log_=$res/$name.log
	rc=$(cut -d' ' -f1 "$rcf")
	p=$(grep -c '^\s*--- PASS' "$log_" || true)
	f=$(grep -c '^\s*--- FAIL' "$log_" || true)
	s=$(grep -c '^\s*--- SKIP' "$log_" || true)
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	secs=$(awk '{printf "%.1f", $3-$2}' "$rcf")
	if [ "$rc" != 0 ]; then
		bad=$((bad + 1))
		log "FAIL $name (exit $rc, ${secs}s): $p passed, $f failed"
		grep -E -- '--- FAIL|_test.go:[0-9]+:|panic:|timed out' "$log_" | head -40 | sed 's/^/    /'
	else
		log "ok   $name (${secs}s): $p passed, $s skipped"
	fi
done
if [ ! -f "$res/finished" ]; then
	bad=$((bad + 1))
	log "the board did not finish (qemu exit $qrc); last console lines:"
	tail -30 "$WORK/console.log" | sed 's/^/    /'
fi
boot=$(cat "$res/boot-seconds" 2>/dev/null || echo '?')
log "$(awk -v a="$t0" -v b="$t_prep" -v c="$t_build" -v d="$t_end" -v boot="$boot" \
	'BEGIN{printf "prepare %.1fs, build %.1fs, board %.1fs (kernel+init up after %ss)", b-a, c-b, d-c, boot}')"
echo "vboard-$ARCH: $pass passed, $fail failed, $skip skipped"
[ "$bad" -eq 0 ]
