#!/usr/bin/env bash
# extract-vmlinux.sh BZIMAGE > vmlinux: the ELF kernel inside an x86 bzImage
# (Debian compresses it with xz). qemu boots the ELF through its PVH entry
# point without running the decompressor, which under TCG takes seconds.
set -eu # not pipefail: the ELF check closes xz's pipe early
img=$1
# Every offset where the xz magic (FD 37 7A 58 5A 00) starts; the first that
# decompresses to an ELF file is the kernel.
for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$img" | cut -d: -f1); do
	if tail -c +$((off + 1)) "$img" | xz -dc 2>/dev/null | head -c 4 | grep -q $'^\x7fELF'; then
		tail -c +$((off + 1)) "$img" | xz -dc 2>/dev/null || true
		exit 0
	fi
done
echo "extract-vmlinux.sh: no xz-compressed ELF kernel in $img" >&2
exit 1
